package dev.convspark.ml.training;

import dev.convspark.ml.exchange.Encryption;
import dev.convspark.ml.exchange.GradientExchange;
import dev.convspark.ml.exchange.LocalExchange;
import dev.convspark.ml.exchange.RingAllreduce;
import dev.convspark.ml.exchange.StarAllreduce;
import dev.convspark.ml.exchange.Wire;
import dev.convspark.tensor.backend.Device;
import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.layers.SoftmaxCrossEntropy;
import dev.convspark.tensor.spec.ModelSpec;
import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import org.apache.spark.BarrierTaskContext;
import scala.collection.Iterator;
import scala.jdk.javaapi.CollectionConverters;
import scala.runtime.AbstractFunction1;

/**
 * One barrier task of a fit: finds the others (Spark's {@code allGather}, while its partition is
 * packed), forms the units (the workers of one JVM on one device train as one, see
 * {@link BarrierTraining}), connects the units' exchange, agrees on the partitions' sizes, and, as
 * a unit's first worker, runs the steps ({@link StepLoop}); the unit's other workers hand it their
 * partitions and wait.
 */
final class BarrierWorker extends AbstractFunction1<Iterator<Object>, Iterator<byte[]>>
    implements Serializable {
  private static final long serialVersionUID = 1L;
  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(BarrierWorker.class);
  private final Settings s;
  private final String key;

  /** {@code key}: the run's key, which starts with the driver's JVM (see {@link BarrierTraining#HANDED_OVER}). */
  BarrierWorker(Settings s, String key) {
    this.s = s;
    this.key = key;
  }

  @Override
  public Iterator<byte[]> apply(Iterator<Object> rows) {
    try {
      TrainResult r;
      try {
        r = train(CollectionConverters.asJava(rows));
      } catch (Deterministic e) {
        // Every worker saw it (or heard of it through allGather): retrying the stage cannot help.
        r = BarrierTaskContext.get().partitionId() == 0 ? TrainResult.failed(e.failure) : null;
      }
      // Worker 0's result, as bytes (TrainResult.toBytes says why).
      return CollectionConverters.asScala(r == null ? List.<byte[]>of().iterator() : List.of(r.toBytes()).iterator());
    } catch (IOException e) {
      throw new UncheckedIOException(e.getMessage(), e);
    }
  }

  private TrainResult train(java.util.Iterator<Object> rows) throws IOException {
    BarrierTaskContext ctx = BarrierTaskContext.get();
    int rank = ctx.partitionId();
    int size = ctx.getTaskInfos().length;
    String address = ctx.getTaskInfos()[rank].address();
    String host = address.substring(0, address.lastIndexOf(':'));
    // The rendezvous runs while the partition is packed: Spark's allGather answers on a poll of
    // about a second, which would otherwise come on top of the packing. Every worker tells its
    // JVM, its device and where it listens, so that workers sharing one JVM share memory instead
    // of sockets, and those sharing a device too are trained as one; rank 0 adds the run's
    // secret and the step to start from (the newest checkpoint when there is one, so a retried
    // stage resumes from it).
    ServerSocket server = null;
    java.util.concurrent.FutureTask<Start> init = null;
    Device device = EngineCache.taskDevice(Device.parse(s.device()));
    server = Wire.listen(host);
    String mine = LocalExchange.JVM_ID + " " + device.kind() + ":" + device.ordinal() + " " + host + " "
        + server.getLocalPort();
    if (rank == 0) {
      int resume = s.checkpoints() == null ? 0 : s.checkpoints().latest();
      // The initial weights (or the checkpoint's) are made while the partition is packed.
      init = new java.util.concurrent.FutureTask<>(() -> Start.of(s, ModelSpec.parse(s.spec()), resume));
      Thread initialising = new Thread(init, "convspark-init");
      initialising.setDaemon(true);
      initialising.start();
      BarrierTraining.lastHubPort = server.getLocalPort();
      byte[] token = new byte[24];
      new SecureRandom().nextBytes(token);
      mine += " " + HexFormat.of().formatHex(token) + " " + resume;
    }
    String announce = mine;
    java.util.concurrent.FutureTask<String[]> rendezvous = new java.util.concurrent.FutureTask<>(
        () -> ctx.allGather(announce));
    Thread gathering = new Thread(rendezvous, "convspark-rendezvous-" + rank);
    gathering.setDaemon(true);
    gathering.start();
    ModelSpec spec = ModelSpec.parse(s.spec());
    Block block = null;
    String status = null;
    try {
      block = Block.of(rows, s.reader(), s.labels(), spec.inputShape().size(), s.indicator(), s.weights());
    } catch (IllegalArgumentException | IllegalStateException e) {
      status = failure(e);
    }
    String[] hub;
    boolean sameJvmOtherDevices;
    List<int[]> units;
    int[] members;
    LocalExchange group = null;
    GradientExchange over = null;
    try {
      String[] all = awaitRendezvous(rendezvous, gathering);
      hub = all[0].split(" ");
      String exchangeProperty = ctx.getLocalProperty(BarrierTraining.EXCHANGE);
      boolean star = "star".equals(exchangeProperty);
      boolean sockets = star || "socket".equals(exchangeProperty);
      // Workers of one JVM on different devices (each task its own GPU) sum through memory.
      sameJvmOtherDevices = size > 1 && !sockets
          && java.util.Arrays.stream(all).allMatch(m -> m.split(" ")[0].equals(LocalExchange.JVM_ID))
          && !java.util.Arrays.stream(all).allMatch(m -> m.split(" ")[1].equals(hub[1]));
      units = sockets || sameJvmOtherDevices ? singletons(size) : units(all);
      int u = 0;
      while (indexOf(units.get(u), rank) < 0) {
        u++;
      }
      int unit = u;
      members = units.get(unit);
      String secret = hub[4];
      if (members.length > 1 || sameJvmOtherDevices) {
        group = sameJvmOtherDevices ? LocalExchange.join(secret, rank, size, BarrierTraining.TIMEOUT_MS, ctx::isInterrupted)
            : LocalExchange.join(secret, indexOf(members, rank), members.length, BarrierTraining.TIMEOUT_MS, ctx::isInterrupted);
      }
      if (members.length > 1 && members[0] != rank) {
        // Trained by the unit's first worker: hand it the partition, wait for it to end.
        try (LocalExchange g = group) {
          g.share(new Object[] {status == null ? block.status() : status, block}, BarrierTraining.START_TIMEOUT_MS);
          g.awaitLeader();
        }
        return null;
      }
      if (sameJvmOtherDevices) {
        over = group;
      } else if (units.size() > 1) {
        // The units' first workers sum over sockets, unit u as worker u of the ring (or star).
        // Between executors on one host the ring's floats take shared memory, unless encrypted.
        Wire.Shaper link = s.encrypt() ? new Encryption(secret, unit, Wire.NONE)
            : "stream".equals(exchangeProperty) ? Wire.STREAM : Wire.NONE;
        if (star) {
          over = rank == 0 ? StarAllreduce.hub(server, units.size(), secret, BarrierTraining.START_TIMEOUT_MS, BarrierTraining.TIMEOUT_MS,
              ctx::isInterrupted, link)
              : StarAllreduce.spoke(unit, units.size(), hub[2], Integer.parseInt(hub[3]), secret, BarrierTraining.TIMEOUT_MS, link);
        } else {
          String[] next = all[units.get((unit + 1) % units.size())[0]].split(" ");
          over = RingAllreduce.join(unit, units.size(), server, next[2], Integer.parseInt(next[3]), secret,
              BarrierTraining.START_TIMEOUT_MS, BarrierTraining.TIMEOUT_MS, ctx::isInterrupted, link);
        }
      }
    } catch (IOException | RuntimeException e) {
      if (group != null) {
        group.close();
      }
      throw e;
    } finally {
      if (server != null) {
        server.close();
      }
    }
    if (members.length > 1) {
      LOG.info("worker {} trains workers {} (the tasks of this JVM) as one{}", rank, java.util.Arrays.toString(members),
          over == null ? "" : ", summing with " + (units.size() - 1) + " other unit(s) through " + over
              + (s.encrypt() ? ", encrypted (AES-GCM)" : ""));
    } else if (rank == 0 && size > 1) {
      LOG.info("{} workers, each training its share, summing through {}{}", size, over,
          s.encrypt() ? ", encrypted (AES-GCM)" : "");
    }
    try (LocalExchange ownGroup = sameJvmOtherDevices ? null : group; GradientExchange exchange = over) {
      ModelRunner runner = null;
      if (status == null) {
        try {
          // The engine before the first step too: a device that cannot be used stops every
          // worker at once. A unit's first worker runs the threads of all its workers, but no
          // more than the JVM has cores: a session with more task slots than cores (local[4]
          // on two) would otherwise run twice as many compute threads as cores, four times slower.
          runner = EngineCache.runner(s.spec(), members.length > 1 ? mergedThreads(s.threads(), members.length)
              : s.threads(), s.device(), s.precision());
          status = block.status();
        } catch (IllegalArgumentException | IllegalStateException e) {
          status = failure(e);
        }
      }
      // The unit's status: its first failure, or its workers' sizes in rank order.
      Block[] blocks = {block};
      String unitStatus = status;
      if (members.length > 1) {
        Object[] parts = ownGroup.share(new Object[] {status, block}, BarrierTraining.START_TIMEOUT_MS);
        blocks = new Block[members.length];
        StringBuilder counts = new StringBuilder();
        for (int m = 0; m < members.length && !unitStatus.startsWith("!"); m++) {
          Object[] part = (Object[]) parts[m];
          String st = (String) part[0];
          blocks[m] = (Block) part[1];
          unitStatus = st.startsWith("!") ? st : unitStatus;
          counts.append(m == 0 ? "" : ",").append(st);
        }
        unitStatus = unitStatus.startsWith("!") ? unitStatus : counts.toString();
      }
      String[] statuses = exchange == null ? new String[] {unitStatus} : exchange.gather(unitStatus, BarrierTraining.START_TIMEOUT_MS);
      List<Integer> sizes = new ArrayList<>(java.util.Collections.nCopies(size, 0));
      double[] weightSums = new double[size];
      for (int u = 0; u < statuses.length; u++) {
        if (statuses[u].startsWith("!")) {
          throw new Deterministic(new IllegalArgumentException(statuses[u].substring(1)));
        }
        String[] counts = statuses[u].split(",");
        int[] ranks = units.get(u);
        for (int m = 0; m < ranks.length; m++) {
          sizes.set(ranks[m], Block.statusCount(counts[m]));
          weightSums[ranks[m]] = Block.statusWeight(counts[m]);
        }
      }
      long total = sizes.stream().mapToLong(Integer::longValue).sum();
      if (total == 0) {
        throw new Deterministic(new IllegalArgumentException("cannot fit on an empty dataset"));
      }
      double weightScale;
      try {
        // Summed in rank order: every worker gets the same scale.
        weightScale = Sampling.weightScale(s.weights(), total, java.util.Arrays.stream(weightSums).sum());
      } catch (IllegalArgumentException e) {
        throw new Deterministic(e);
      }
      int[] shares = Sampling.shares(sizes, total, s.batchSize());
      int[] firsts = Sampling.firstSamples(shares);
      int start = Integer.parseInt(hub[5]);
      Start from = init != null ? result(init) : Start.of(s, spec, start);
      ModelRunner r = runner;
      if (members.length == 1) {
        Block own = block;
        int share = shares[rank];
        float[] zeros = share == 0 ? new float[runner.paramCount()] : null;
        GradientExchange alone = exchange != null ? exchange : new UnitLead(null, null);
        return new StepLoop(s, key).run(ctx, members, stepSeed -> {
          if (share == 0) {
            // Nothing to sample here: this worker adds zeros.
            r.copyGradientsFrom(zeros);
            return new GradientSum(null, 0, 0, 0);
          }
          return Sampling.partitionGradient(own, share, rank, firsts[rank], stepSeed, r, null, s.shift(), weightScale);
        }, share, alone, from, start, runner, new Block[] {own});
      }
      // A unit (the workers of one JVM on one device): its first worker trains all their shares
      // as one batch with the threads of all, drawing each worker's share from that worker's
      // partition as the worker would, and the others wait for it to end. The same samples and
      // dropout masks as when each worker computes its share (the sums differ only in the
      // order of the additions), without every worker reading every weight and 13 MB of
      // gradients being summed and copied in memory each step. Alone, the unit's gradient is
      // the mean at once; otherwise the sum, which the units then add over sockets.
      int n = 0;
      long[] runFirsts = new long[members.length];
      int[] runLengths = new int[members.length];
      for (int m = 0; m < members.length; m++) {
        runFirsts[m] = firsts[members[m]];
        runLengths[m] = shares[members[m]];
        n += runLengths[m];
      }
      int batch = n;
      float lossScale = exchange == null ? 1f / batch : 1f;
      float[] x = new float[Math.max(1, batch) * spec.inputShape().size()];
      int[] y = new int[Math.max(1, batch)];
      float[] w = s.weights() == null ? null : new float[Math.max(1, batch)];
      Block[] parts = blocks;
      float[] zeros = batch == 0 ? new float[runner.paramCount()] : null;
      return new StepLoop(s, key).run(ctx, members, stepSeed -> {
        if (batch == 0) {
          r.copyGradientsFrom(zeros);
          return new GradientSum(null, 0, 0, 0);
        }
        int at = 0;
        for (int m = 0; m < members.length; m++) {
          Sampling.sample(parts[m], runLengths[m], members[m], stepSeed, x, y, w, weightScale, at, s.shift());
          at += runLengths[m];
        }
        SoftmaxCrossEntropy.Result g = r.computeGradients(x, y, w, batch, lossScale, stepSeed, runFirsts, runLengths);
        return new GradientSum(null, g.lossSum(), g.correct(), batch);
      }, batch, new UnitLead(ownGroup, exchange), from, start, runner, parts);
    }
  }

  /** Every worker a unit of its own. */
  private static List<int[]> singletons(int size) {
    List<int[]> units = new ArrayList<>();
    for (int r = 0; r < size; r++) {
      units.add(new int[] {r});
    }
    return units;
  }

  /**
   * The units of a run, in the order of their first workers: all the workers of one JVM on one
   * device form one, trained as one batch; the workers of a JVM on several devices are each
   * a unit of their own. {@code all}: every worker's rendezvous message, JVM then device first.
   */
  static List<int[]> units(String[] all) {
    java.util.Map<String, List<Integer>> byJvm = new java.util.LinkedHashMap<>();
    for (int r = 0; r < all.length; r++) {
      byJvm.computeIfAbsent(all[r].split(" ")[0], k -> new ArrayList<>()).add(r);
    }
    List<int[]> units = new ArrayList<>();
    for (List<Integer> ranks : byJvm.values()) {
      String device = all[ranks.get(0)].split(" ")[1];
      if (ranks.stream().allMatch(r -> all[r].split(" ")[1].equals(device))) {
        units.add(ranks.stream().mapToInt(Integer::intValue).toArray());
      } else {
        ranks.forEach(r -> units.add(new int[] {r}));
      }
    }
    units.sort(java.util.Comparator.comparingInt(u -> u[0]));
    return units;
  }

  /** Where {@code v} is in {@code a}, or -1. */
  private static int indexOf(int[] a, int v) {
    for (int i = 0; i < a.length; i++) {
      if (a[i] == v) {
        return i;
      }
    }
    return -1;
  }

  private static String failure(RuntimeException e) {
    // Told to every worker, so that all stop at once and Spark does not retry.
    String m = String.valueOf(e.getMessage());
    return "!" + (m.length() > 4000 ? m.substring(0, 4000) + "..." : m);
  }

  /**
   * The answer of the allGather running in {@code gathering}. Spark's allGather sleeps a second
   * between looks at its answer and looks again at once when its thread is interrupted (it then
   * only checks whether the task was killed): nudging it every 2 ms saves up to a second per fit.
   */
  private static String[] awaitRendezvous(java.util.concurrent.FutureTask<String[]> rendezvous, Thread gathering)
      throws IOException {
    while (true) {
      try {
        return rendezvous.get(2, java.util.concurrent.TimeUnit.MILLISECONDS);
      } catch (java.util.concurrent.TimeoutException e) {
        gathering.interrupt();
      } catch (java.util.concurrent.ExecutionException e) {
        throw e.getCause() instanceof RuntimeException re ? re : new IllegalStateException(e.getCause());
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        gathering.interrupt();
        throw new IOException("interrupted while waiting for the other workers to start", e);
      }
    }
  }

  /** The threads of {@code workers} workers of {@code threads} each, at most the JVM's cores (and never fewer than one worker's). */
  static int mergedThreads(int threads, int workers) {
    return Math.max(threads, Math.min(threads * workers, Runtime.getRuntime().availableProcessors()));
  }

  /** What {@code task} returned, or what it threw. */
  private static Start result(java.util.concurrent.FutureTask<Start> task) throws IOException {
    try {
      return task.get();
    } catch (java.util.concurrent.ExecutionException e) {
      if (e.getCause() instanceof IOException io) {
        throw io;
      }
      throw e.getCause() instanceof RuntimeException re ? re : new IllegalStateException(e.getCause());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted while the initial weights were made", e);
    }
  }



}
