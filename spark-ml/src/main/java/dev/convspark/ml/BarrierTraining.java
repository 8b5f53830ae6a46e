package dev.convspark.ml;

import dev.convspark.ml.exchange.Encryption;
import dev.convspark.ml.exchange.GradientExchange;
import dev.convspark.ml.exchange.LocalExchange;
import dev.convspark.ml.exchange.RingAllreduce;
import dev.convspark.ml.exchange.StarAllreduce;
import dev.convspark.ml.exchange.Wire;
import dev.convspark.tensor.Network;
import dev.convspark.tensor.backend.Device;
import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.io.ModelState;
import dev.convspark.tensor.layers.SoftmaxCrossEntropy;
import dev.convspark.tensor.optim.LearningRateSchedule;
import dev.convspark.tensor.optim.Optimizer;
import dev.convspark.tensor.optim.OptimizerState;
import dev.convspark.tensor.spec.ModelSpec;
import dev.convspark.tensor.train.Trainer;
import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.spark.BarrierTaskContext;
import org.apache.spark.rdd.RDD;
import org.apache.spark.sql.Row;
import scala.collection.Iterator;
import scala.jdk.javaapi.CollectionConverters;
import scala.reflect.ClassTag$;
import scala.runtime.AbstractFunction1;

/**
 * {@code syncMode=barrier}: one long-lived task per worker in a Spark barrier stage. The workers
 * find each other through {@link BarrierTaskContext#allGather} while they pack their partitions,
 * tell each other their sizes, then run every step without Spark: sample each worker's share of
 * the global batch, compute the gradient, sum it with a {@link GradientExchange}, apply the same
 * optimizer update. All replicas start from the same seed and see the same sums, so they stay
 * identical; rank 0 returns the weights.
 *
 * <p>The workers that are tasks of one JVM on one device form a unit, trained as one: the unit's
 * first worker draws every member's share from that member's partition, runs them as one batch on
 * an engine with the threads of all of them, and the others wait for it. Same samples, same
 * dropout masks, the same sum up to the order of its additions; but the weights are read once per
 * step and unit instead of once per worker, and only the units exchange gradients (over sockets;
 * a run that is one unit exchanges nothing). Workers of one JVM on different devices are units of
 * their own and sum through memory.
 */
final class BarrierTraining {

  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(BarrierTraining.class);

  /** How long a worker waits for the others in one step's exchange. */
  static final int TIMEOUT_MS = 300_000;

  /** How long a worker waits for the others to pack their partitions and connect. */
  static final int START_TIMEOUT_MS = 3_600_000;

  /** The port rank 0 listened on last in this JVM: lets tests play a stranger connecting to it. */
  static volatile int lastHubPort;

  private BarrierTraining() {
  }

  /** The settings every worker needs, shipped with the task. */
  record Settings(String spec, FeatureReader reader, LabelReader labels, String optimizer, float learningRate,
                  int batchSize, int steps, float keepProb, long seed, int threads, Checkpoints checkpoints,
                  int checkpointInterval, String device, TrainingProgress.Remote progress, boolean encrypt,
                  LearningRateSchedule schedule, Validation.Plan validation) implements Serializable {

    /** The validation indicator the workers read as the rows' third field, or null. */
    IndicatorReader indicator() {
      return validation == null ? null : validation.indicator();
    }
  }

  /**
   * Whether the units' gradient and parameter traffic is encrypted ({@link Encryption}): as Spark's
   * own traffic is, when {@code spark.network.crypto.enabled} or {@code spark.ssl.enabled} is set.
   * With {@code spark.authenticate} alone the exchange authenticates its connections (the run's
   * secret in the handshake, as always) and sends in the clear.
   */
  static boolean encrypts(org.apache.spark.SparkConf conf) {
    return conf.getBoolean("spark.network.crypto.enabled", false) || conf.getBoolean("spark.ssl.enabled", false);
  }

  /**
   * Test hook: the local property {@value} set to {@code rank:step} makes that worker throw
   * at that step in the first attempt of the barrier stage (Spark then retries the stage);
   * {@code rank:step:halt} kills the worker's whole JVM instead (for executors in their own process).
   */
  static final String FAIL_AT_STEP = "convspark.test.failAtStep";

  /**
   * The local property {@value} set to {@code socket} makes workers that share a JVM exchange
   * gradients over sockets all the same, each a unit of its own, as workers in separate executors
   * do (for tests and diagnosis); {@code star} does the same through the star exchange of before
   * the ring ({@link StarAllreduce}) instead of {@link RingAllreduce}.
   */
  static final String EXCHANGE = "convspark.exchange";

  /**
   * Where training starts in both sync modes: the weights, optimizer, history and validation of
   * checkpoint {@code step}, or at step 0 the seeded initial weights, a fresh optimizer and empty
   * histories (each {@code s.steps()} long). {@code validation} is null without validation;
   * {@code best} holds the best evaluation's weights when the model keeps them (else null).
   */
  record Start(float[] params, Optimizer optimizer, double[] loss, double[] accuracy, Validation validation,
               float[] best) {

    static Start of(Settings s, ModelSpec spec, int step) throws IOException {
      double[] loss = new double[s.steps()];
      double[] accuracy = new double[s.steps()];
      Validation.Plan plan = s.validation();
      if (step == 0) {
        Network init = new Network(spec);
        init.initialize(s.seed());
        Optimizer fresh = Optimizer.create(s.optimizer(), s.learningRate(), init.paramCount());
        fresh.setSchedule(s.schedule());
        return new Start(init.params(), fresh, loss, accuracy, plan == null ? null : new Validation(plan), null);
      }
      Checkpoints.Checkpoint c = s.checkpoints().load(step, spec, s.optimizer());
      System.arraycopy(c.loss(), 0, loss, 0, step);
      System.arraycopy(c.accuracy(), 0, accuracy, 0, step);
      float[] params = c.state().params();
      // The step count is in the checkpoint: the schedule continues where it was.
      Optimizer restored = Optimizer.restore(c.state().optimizer(), params.length);
      restored.setSchedule(s.schedule());
      Validation validation = null;
      float[] best = null;
      if (plan != null) {
        if (c.validation() == null) {
          LOG.info("checkpoint step {} was written without validation: validation starts after it", step);
        }
        validation = c.validation() == null ? new Validation(plan) : Validation.restore(plan, c.validation());
        if (plan.keepsBest() && validation.bestStep() > 0) {
          best = validation.bestStep() == step ? params.clone() : c.best();
          if (best == null) {
            throw new IOException(s.checkpoints().dir() + ": checkpoint step " + step + " lacks the weights of its best"
                + " validation step " + validation.bestStep() + " (step-" + step + ".best.cspk)");
          }
        }
      }
      return new Start(params, restored, loss, accuracy, validation, best);
    }
  }

  /**
   * Results that worker 0 hands to a driver in its own JVM (local mode), by the run's key: the
   * weights then skip the shuffle and the task result (two serialisations of 13 MB and a
   * compressed shuffle file, about 0.2 s a fit).
   */
  private static final ConcurrentHashMap<String, TrainResult> HANDED_OVER = new ConcurrentHashMap<>();

  /**
   * Trains on an RDD of Spark's internal rows (each worker packs its partition) or of
   * {@link Block}s packed already.
   */
  static TrainResult run(RDD<?> rows, Settings s) {
    // The barrier stage writes its result to a shuffle read by a one-task stage: Spark retries a
    // failed barrier stage only when it is a shuffle-map stage (a failed barrier result stage
    // aborts the job), and a retried stage resumes from the newest checkpoint.
    @SuppressWarnings("unchecked")
    RDD<Object> input = (RDD<Object>) rows;
    String key = LocalExchange.JVM_ID + " " + UUID.randomUUID();
    TrainResult r;
    try {
      Object[] results = (Object[]) input.barrier().mapPartitions(new Worker(s, key), false,
          ClassTag$.MODULE$.apply(TrainResult.class)).repartition(1, null).collect();
      if (results.length != 1) {
        throw new IllegalStateException("barrier training returned " + results.length + " results (expected 1 from worker 0)");
      }
      TrainResult here = HANDED_OVER.get(key);
      r = here != null ? here : (TrainResult) results[0];
    } finally {
      HANDED_OVER.remove(key);
    }
    if (r.failure() == null && r.weights() == null) {
      throw new IllegalStateException("worker 0 handed its result over in this JVM, but it is not here");
    }
    if (r.failure() != null) {
      throw r.failure();
    }
    return r;
  }

  private static final class Worker extends AbstractFunction1<Iterator<Object>, Iterator<TrainResult>>
      implements Serializable {
    private static final long serialVersionUID = 1L;
    private final Settings s;
    private final String key;

    /** {@code key}: the run's key, which starts with the driver's JVM (see {@link #HANDED_OVER}). */
    Worker(Settings s, String key) {
      this.s = s;
      this.key = key;
    }

    @Override
    public Iterator<TrainResult> apply(Iterator<Object> rows) {
      try {
        TrainResult r;
        try {
          r = train(CollectionConverters.asJava(rows));
        } catch (Deterministic e) {
          // Every worker saw it (or heard of it through allGather): retrying the stage cannot help.
          r = BarrierTaskContext.get().partitionId() == 0 ? TrainResult.failed(e.failure) : null;
        }
        return CollectionConverters.asScala(r == null ? List.<TrainResult>of().iterator() : List.of(r).iterator());
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
        lastHubPort = server.getLocalPort();
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
        block = Block.of(rows, s.reader(), s.labels(), spec.inputShape().size(), s.indicator());
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
        String exchangeProperty = ctx.getLocalProperty(EXCHANGE);
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
          group = sameJvmOtherDevices ? LocalExchange.join(secret, rank, size, TIMEOUT_MS, ctx::isInterrupted)
              : LocalExchange.join(secret, indexOf(members, rank), members.length, TIMEOUT_MS, ctx::isInterrupted);
        }
        if (members.length > 1 && members[0] != rank) {
          // Trained by the unit's first worker: hand it the partition, wait for it to end.
          try (LocalExchange g = group) {
            g.share(new Object[] {status == null ? Integer.toString(block.count) : status, block}, START_TIMEOUT_MS);
            g.awaitLeader();
          }
          return null;
        }
        if (sameJvmOtherDevices) {
          over = group;
        } else if (units.size() > 1) {
          // The units' first workers sum over sockets, unit u as worker u of the ring (or star).
          Wire.Shaper link = s.encrypt() ? new Encryption(secret, unit, Wire.NONE) : Wire.NONE;
          if (star) {
            over = rank == 0 ? StarAllreduce.hub(server, units.size(), secret, START_TIMEOUT_MS, TIMEOUT_MS,
                ctx::isInterrupted, link)
                : StarAllreduce.spoke(unit, units.size(), hub[2], Integer.parseInt(hub[3]), secret, TIMEOUT_MS, link);
          } else {
            String[] next = all[units.get((unit + 1) % units.size())[0]].split(" ");
            over = RingAllreduce.join(unit, units.size(), server, next[2], Integer.parseInt(next[3]), secret,
                START_TIMEOUT_MS, TIMEOUT_MS, ctx::isInterrupted, link);
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
                : s.threads(), s.device());
            status = Integer.toString(block.count);
          } catch (IllegalArgumentException | IllegalStateException e) {
            status = failure(e);
          }
        }
        // The unit's status: its first failure, or its workers' sizes in rank order.
        Block[] blocks = {block};
        String unitStatus = status;
        if (members.length > 1) {
          Object[] parts = ownGroup.share(new Object[] {status, block}, START_TIMEOUT_MS);
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
        String[] statuses = exchange == null ? new String[] {unitStatus} : exchange.gather(unitStatus, START_TIMEOUT_MS);
        List<Integer> sizes = new ArrayList<>(java.util.Collections.nCopies(size, 0));
        for (int u = 0; u < statuses.length; u++) {
          if (statuses[u].startsWith("!")) {
            throw new Deterministic(new IllegalArgumentException(statuses[u].substring(1)));
          }
          String[] counts = statuses[u].split(",");
          int[] ranks = units.get(u);
          for (int m = 0; m < ranks.length; m++) {
            sizes.set(ranks[m], Integer.parseInt(counts[m]));
          }
        }
        long total = sizes.stream().mapToLong(Integer::longValue).sum();
        if (total == 0) {
          throw new Deterministic(new IllegalArgumentException("cannot fit on an empty dataset"));
        }
        int[] shares = CnnClassifier.shares(sizes, total, s.batchSize());
        int[] firsts = CnnClassifier.firstSamples(shares);
        int start = Integer.parseInt(hub[5]);
        Start from = init != null ? result(init) : Start.of(s, spec, start);
        ModelRunner r = runner;
        if (members.length == 1) {
          Block own = block;
          int share = shares[rank];
          float[] zeros = share == 0 ? new float[runner.paramCount()] : null;
          GradientExchange alone = exchange != null ? exchange : new Lead(null, null);
          return steps(ctx, members, stepSeed -> {
            if (share == 0) {
              // Nothing to sample here: this worker adds zeros.
              r.copyGradientsFrom(zeros);
              return new GradientSum(null, 0, 0, 0);
            }
            return CnnClassifier.partitionGradient(own, share, rank, firsts[rank], stepSeed, r, null);
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
        Block[] parts = blocks;
        float[] zeros = batch == 0 ? new float[runner.paramCount()] : null;
        return steps(ctx, members, stepSeed -> {
          if (batch == 0) {
            r.copyGradientsFrom(zeros);
            return new GradientSum(null, 0, 0, 0);
          }
          int at = 0;
          for (int m = 0; m < members.length; m++) {
            CnnClassifier.sample(parts[m], runLengths[m], members[m], stepSeed, x, y, at);
            at += runLengths[m];
          }
          SoftmaxCrossEntropy.Result g = r.computeGradients(x, y, batch, lossScale, stepSeed, runFirsts, runLengths);
          return new GradientSum(null, g.lossSum(), g.correct(), batch);
        }, batch, new Lead(ownGroup, exchange), from, start, runner, parts);
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
     * Runs the steps after {@code start}: {@code gradient} leaves each step's gradient of
     * {@code count} samples in the runner, {@code exchange} sums it over the workers and applies
     * the update; with validation, the validation rows of {@code blocks} are evaluated when due
     * and the evaluations summed over the units.
     */
    private TrainResult steps(BarrierTaskContext ctx, int[] members, StepGradient gradient, int count,
                              GradientExchange exchange, Start from, int start, ModelRunner runner, Block[] blocks)
        throws IOException {
      int rank = members[0];
      ModelSpec spec = ModelSpec.parse(s.spec());
      runner.setKeepProb(s.keepProb());
      runner.copyParametersFrom(from.params());
      Optimizer opt = from.optimizer();
      double[] loss = from.loss();
      double[] accuracy = from.accuracy();
      Validation validation = from.validation();
      float[] best = from.best();
      int last = start;
      if (start > 0 && rank == 0) {
        LOG.info("resuming at step {} from the checkpoint in {}", start, s.checkpoints().dir());
      }
      int[] failAt = failAt(ctx);
      // Scratch for exchanges that copy the gradients out.
      float[] grads = new float[runner.paramCount()];
      // Every unit updates its share of the parameters when all keep them in the heap (the CPU).
      boolean sharded = exchange.shardUpdates(runner.hostGradients() != null && runner.hostParameters() != null);
      if (sharded && rank == 0) {
        LOG.info("the optimizer's update is sharded between the units");
      }
      double[] stats = new double[3];
      long t0 = System.nanoTime();
      for (int step = start + 1; step <= s.steps() && (validation == null || !validation.stopped()); step++) {
        // A unit's first worker fails for any of its workers.
        if (failAt != null && java.util.Arrays.stream(members).anyMatch(m -> m == failAt[0]) && failAt[1] == step) {
          if (failAt[2] == 1) {
            LOG.error("{}: halting this executor's JVM at step {} (worker {})", FAIL_AT_STEP, step, rank);
            Runtime.getRuntime().halt(137);
          }
          throw new IllegalStateException("injected failure of worker " + rank + " at step " + step
              + " (" + FAIL_AT_STEP + ", first attempt only)");
        }
        exchange.beginStep(runner, opt, count);
        GradientSum g = gradient.compute(Trainer.stepSeed(s.seed(), step));
        stats[0] = g.lossSum;
        stats[1] = g.correct;
        stats[2] = g.count;
        int current = step;
        exchange.step(runner, opt, grads, stats, sums -> {
          if (!Double.isFinite(sums[0])) {
            // Every replica sees the same sum, so all stop here together.
            throw new Deterministic(new ArithmeticException("loss became " + sums[0] + " at step " + current
                + "; the model diverged (try a lower learningRate, or check the features for huge values)"));
          }
        });
        loss[step - 1] = stats[0] / stats[2];
        accuracy[step - 1] = stats[1] / stats[2];
        last = step;
        if (validation != null && validation.plan().due(step, s.steps())) {
          double[] sums = Validation.sum(exchange.gather(Validation.encode(Validation.evaluate(runner, blocks)),
              TIMEOUT_MS));
          boolean better;
          try {
            better = validation.record(step, sums);
          } catch (IllegalArgumentException e) {
            throw new Deterministic(e);
          }
          if (better && rank == 0 && validation.plan().keepsBest()) {
            best = best == null ? new float[runner.paramCount()] : best;
            runner.copyParametersTo(best);
          }
          if (rank == 0) {
            TrainingProgress.validated(step, validation);
          }
        }
        boolean stopping = validation != null && validation.stopped();
        if (s.checkpoints() != null && (step % s.checkpointInterval() == 0 || step == s.steps() || stopping)) {
          float[] w = new float[runner.paramCount()];
          runner.copyParametersTo(w);
          // Sharded updates left each unit's moments current for its share only: made whole on
          // every unit (a collective call); only rank 0 saves.
          exchange.syncOptimizer(opt);
          OptimizerState optState = null;
          if (rank == 0) {
            runner.syncOptimizer(opt);
            optState = opt.state();
          }
          ModelState state = new ModelState(spec, w, optState);
          try {
            // Every replica holds the same weights, so every one checks them and all stop together.
            Checkpoints.checkFinite(state, step);
          } catch (ArithmeticException e) {
            throw new Deterministic(e);
          }
          if (rank == 0) {
            s.checkpoints().save(step, state, loss, accuracy, validation == null ? null : validation.history(),
                best != null && validation.bestStep() < step ? best : null);
          }
        }
        if (rank == 0) {
          TrainingProgress.report(step, s.steps(), start, loss[step - 1], accuracy[step - 1], stats[2], t0, validation);
          if (s.progress() != null) {
            s.progress().publish(step, loss[step - 1], accuracy[step - 1], validation);
          }
        }
      }
      if (rank != 0) {
        return null;
      }
      float[] weights = best;
      if (weights == null) {
        weights = new float[runner.paramCount()];
        runner.copyParametersTo(weights);
      }
      TrainResult result = new TrainResult(weights, java.util.Arrays.copyOf(loss, last),
          java.util.Arrays.copyOf(accuracy, last), validation == null ? null : validation.history(), start,
          (System.nanoTime() - t0) / 1e9);
      if (key.startsWith(LocalExchange.JVM_ID + " ")) {
        // The driver is in this JVM: the shuffle carries only a marker.
        HANDED_OVER.put(key, result);
        return new TrainResult(null, null, null, null, start, result.stepSeconds());
      }
      return result;
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

    /** One step's gradient, left in the runner, for the step's seed. */
    private interface StepGradient {
      GradientSum compute(long stepSeed);
    }

    /**
     * The exchange of a unit's first worker, which trains the unit's workers as one: it stops when
     * another worker of the unit has stopped or its own task was killed; with {@code over}, it sums
     * the unit's gradient with the other units', else (one unit: the gradient is the mean
     * already) it applies the update itself. Both null: a worker alone in the run.
     */
    private static final class Lead implements GradientExchange {
      private final LocalExchange group;
      private final GradientExchange over;

      Lead(LocalExchange group, GradientExchange over) {
        this.group = group;
        this.over = over;
      }

      @Override
      public String[] gather(String mine, int timeoutMs) throws IOException {
        return over == null ? new String[] {mine} : over.gather(mine, timeoutMs);
      }

      @Override
      public void beginStep(ModelRunner runner, Optimizer optimizer, int count) throws IOException {
        if (over != null) {
          over.beginStep(runner, optimizer, count);
        }
      }

      @Override
      public boolean shardUpdates(boolean canHere) throws IOException {
        return over != null && over.shardUpdates(canHere);
      }

      @Override
      public void syncOptimizer(Optimizer optimizer) throws IOException {
        if (over != null) {
          over.syncOptimizer(optimizer);
        }
      }

      @Override
      public void allreduce(float[] data, double[] stats) throws IOException {
        if (group != null) {
          group.checkOthers();
        }
        if (over != null) {
          over.allreduce(data, stats);
        }
      }

      @Override
      public void step(ModelRunner runner, Optimizer optimizer, float[] scratch, double[] stats,
                       java.util.function.Consumer<double[]> check) throws IOException {
        if (group != null) {
          group.checkOthers();
        }
        if (over != null) {
          over.step(runner, optimizer, scratch, stats, check);
        } else if (group != null) {
          check.accept(stats);
          runner.applyGradients(optimizer);
        } else {
          GradientExchange.alone(runner, optimizer, stats, check);
        }
      }

      @Override
      public void close() {
        // The group and the exchange over the units are closed by the worker that opened them.
      }
    }

    /** A failure every worker meets at the same point, so retrying cannot help. */
    private static final class Deterministic extends RuntimeException {
      private static final long serialVersionUID = 1L;
      private final RuntimeException failure;

      Deterministic(RuntimeException failure) {
        super(failure.getMessage(), failure);
        this.failure = failure;
      }
    }

    private static int[] failAt(BarrierTaskContext ctx) {
      String v = ctx.getLocalProperty(FAIL_AT_STEP);
      if (v == null || ctx.stageAttemptNumber() > 0) {
        return null;
      }
      String[] p = v.split(":");
      return new int[] {Integer.parseInt(p[0]), Integer.parseInt(p[1]), p.length > 2 && p[2].equals("halt") ? 1 : 0};
    }
  }
}
