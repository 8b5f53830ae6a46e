package dev.convspark.ml.exchange;

import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.layers.FactoredGradients;
import dev.convspark.tensor.optim.Adam;
import dev.convspark.tensor.optim.Optimizer;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.Arrays;
import java.util.concurrent.Future;
import java.util.function.BooleanSupplier;

/**
 * Sums a float array (and a few statistics) across the workers of one training run over TCP, in
 * a ring: worker r sends only to worker r + 1 and receives only from worker r - 1 (mod N). Each
 * worker sends and receives 2 (N - 1) / N of the array a step, whatever the number N of workers,
 * where the hub of {@link StarAllreduce} carries (N - 1) times the array each way.
 *
 * <p>The array is cut into chunks ({@link #chunk}: about eight a worker, of 64 KB to 1 MB; the
 * largest dense layer's weights begin and end chunks of their own, see {@code RingFlow.bounds}),
 * taken from the last to the first (the order in which the backward pass finishes them, see
 * {@link #beginStep}). Chunk q belongs to worker q mod N, its owner. Its reduce-scatter starts at
 * the owner's successor, which sends its copy; each worker on the way adds its own copy to the
 * partial sum it received and passes it on, and the owner's addition completes the sum (divided by
 * the total sample count for a mean). The all-gather then carries the sum from the owner round the
 * ring to its predecessor. So chunk q is always added in the same order,
 * {@code ((g[o+1] + g[o+2]) + ...) + g[o]}: the sums depend on the number of workers and the model
 * alone, never on timing, and every worker ends with the same bits.
 *
 * <p>Each connection carries its messages in one schedule that both ends know, so no message
 * needs a header: the array's length and the workers' sample counts, in a factored flow the
 * factors (below), then in round t the reduce-scatter message of chunk t, then the all-gather
 * message of chunk t - {@code lag}, where the lag (2 N rounds) lets the chunks in flight fill the
 * ring before the first sum comes back (the last chunk's reduce-scatter waits for its all-gather:
 * see {@code RingFlow.schedule}); a sharded flow's tail (below) follows on the step's thread. Each
 * worker runs a sender and a receiver thread; the receiver never waits for its own worker's
 * sender, only for the backward pass to finish the chunk it adds to (or to hand over the factors,
 * or to update their rows), so the ring cannot deadlock.
 *
 * <p>The optimizer's update is sharded as in ZeRO stage 1 when every worker keeps its parameters
 * in the heap ({@link #shardUpdates}): a chunk's owner applies the optimizer to the chunk's
 * parameters as soon as their mean gradient is complete, and the all-gather carries the updated
 * parameters instead of the mean. So each worker updates 1/N of the parameters, during the
 * backward pass, and the parameters are those of every worker applying the whole update, bit for
 * bit (the optimizers update element by element). Each worker keeps Adam's moments for its chunks
 * only ({@code Adam.keepOnly}: 1/N of their memory); {@link #syncOptimizer} gathers them whole
 * before a checkpoint, which so holds the whole state and resumes on any number of workers.
 *
 * <p>In a sharded flow the last chunk, the tail (the first layers' gradients, final only when the
 * backward pass ends; deep-mnist's convolutions, 52,096 floats), does not go round the ring
 * twice: the step's thread passes every worker's copy of it round once with the statistics (an
 * all-gather, N - 1 hops instead of 2 (N - 1)), and every worker adds the N copies in rank order
 * and applies the optimizer to them, all alike (see {@code RingFlow.tail}); every worker keeps
 * the tail's moments.
 *
 * <p>At small batches the largest dense layer's weight gradient does not travel at all (a
 * factored flow, see {@code RingFlow.decide}): its gradient is {@code x^T dy}, and its factors,
 * each sample's input row and output-gradient row, are far fewer floats than the product when the
 * global batch is small (deep-mnist's first dense layer at a batch of 50: 0.2 M floats against
 * 3.2 M). The layer hands its factors over ({@link FactoredGradients}) instead of computing the
 * product, the factors go round the ring first (an all-gather, in rank order), and once the
 * backward pass is done with the layer, its thread computes its worker's chunks' part of the
 * summed gradient from every worker's factors in one multiply and updates it
 * ({@link Factors#update}); the reduce-scatter carries the rest of the chunk only. The product
 * costs each worker what its own gradient cost (1/N of the rows, N times the samples); the sums
 * are exact but for float rounding: one multiply over all samples, where the ring adds one
 * product per worker. Only in sharded flows (the all-gather then carries parameters, and no
 * worker needs the gradient rows it does not own).
 *
 * <p>Each worker listens on its executor's address and connects to its successor as
 * {@link Wire} says; its two connections, and whether their floats take shared memory, are its
 * {@link RingLinks}.
 */
public final class RingAllreduce extends SocketExchange {

  /** The fewest floats a chunk has (64 KB), unless the array is smaller. */
  static final int MIN_CHUNK = 1 << 14;
  /** The most floats a chunk has (1 MB). */
  static final int MAX_CHUNK = 1 << 18;

  /** The connections to the successor and from the predecessor; null for a worker alone. */
  private final RingLinks links;
  /** The links' streams (null for a worker alone): the schedule's small values go through them. */
  private final DataOutputStream out;
  private final DataInputStream in;
  private final int next;
  private final int prev;
  // One flow at a time: the receiver's piece of a partial sum, kept between steps.
  private final float[] partial = new float[PIECE];
  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(RingAllreduce.class);

  /** The factored layer's part of factored flows; null for a worker alone. */
  private final Factors factors;
  /** Whether a flow was factored already (said once in the log). */
  private boolean factoredBefore;
  /** The flow in progress (one at a time). */
  private RingFlow current;
  /** The tail of sharded flows; null for a worker alone. */
  private final Tail tail;

  private RingAllreduce(int rank, int size, RingLinks links) {
    super(rank, size);
    this.links = links;
    this.out = links == null ? null : links.out;
    this.in = links == null ? null : links.in;
    this.next = (rank + 1) % size;
    this.prev = (rank + size - 1) % size;
    this.factors = links == null ? null : new Factors(rank, size, links);
    this.tail = links == null ? null : new Tail(rank, size, links);
  }

  /**
   * Joins the ring as worker {@code rank} of {@code size}: connects to its successor, listening at
   * {@code nextHost:nextPort}, and accepts its predecessor on {@code server} (refusing anyone
   * without the run's {@code secret}). Every worker's listening socket must be open before any
   * joins (they are, before Spark's {@code allGather} tells them to each other).
   *
   * @param killed true once this worker's task was killed: it then stops waiting
   */
  public static RingAllreduce join(int rank, int size, ServerSocket server, String nextHost, int nextPort,
                                   String secret, int startTimeoutMs, int stepTimeoutMs, BooleanSupplier killed,
                                   Wire.Shaper shaper) throws IOException {
    if (size == 1) {
      return new RingAllreduce(0, 1, null);
    }
    int next = (rank + 1) % size;
    Socket toNext = Wire.connect(rank, nextHost, nextPort, secret, startTimeoutMs, "worker " + next);
    Socket fromPrev = null;
    try {
      boolean[] wanted = new boolean[size];
      wanted[(rank + size - 1) % size] = true;
      fromPrev = Wire.accept(server, wanted, secret, startTimeoutMs, stepTimeoutMs, killed, rank)[(rank + size - 1) % size];
      toNext.setSoTimeout(stepTimeoutMs);
      RingLinks links = new RingLinks(toNext, fromPrev, shaper, (rank + size - 1) % size, next, MAX_CHUNK);
      links.pairLanes(shaper.sharesMemory());
      return new RingAllreduce(rank, size, links);
    } catch (IOException e) {
      Wire.closeAll(toNext, fromPrev);
      throw e;
    }
  }

  /** Passes every worker's {@code mine} round the ring ({@link RingLinks#allGather}). */
  @Override
  public String[] gather(String mine, int timeoutMs) throws IOException {
    String[] all = new String[size];
    all[rank] = mine;
    if (size == 1) {
      return all;
    }
    int stepTimeout = links.readTimeout();
    links.setReadTimeout(timeoutMs);
    try {
      links.allGather(all, rank, v -> {
        out.writeUTF(v);
        out.flush();
      }, in::readUTF);
      return all;
    } catch (IOException e) {
      throw Wire.silent(prev, e);
    } finally {
      links.setReadTimeout(stepTimeout);
    }
  }

  /**
   * The floats in each chunk of an {@code n}-float array summed by {@code size} workers (the last
   * chunk, at the array's start, may have fewer): about eight chunks a worker, so the ring fills
   * within a few per cent of the array, but no fewer than {@link #MIN_CHUNK} nor more than
   * {@link #MAX_CHUNK}, since every chunk costs each worker's threads a hand-over or two (two
   * executors on two cores with deep-mnist's 13 MB: about 10% more images a second with 800 KB
   * chunks than with 64 KB ones, in {@code bench spark} runs minutes apart). A function of the
   * array's length and the run's size alone, as the order of the additions must be.
   */
  static int chunk(int n, int size) {
    long per = ((long) n + 8L * size - 1) / (8L * size);
    per = (per + 1023) / 1024 * 1024;
    return (int) Math.max(MIN_CHUNK, Math.min(MAX_CHUNK, per));
  }

  /** Rounds between a chunk's reduce-scatter message and its all-gather message on every connection. */
  private int lag() {
    return 2 * size;
  }

  /** The owner of chunk {@code q}, where its sum is completed. */
  private int owner(int q) {
    return q % size;
  }

  /** Since the last {@link #syncOptimizer}, a step was sharded: the moments are whole nowhere. */
  private boolean shardedSinceSync;
  /** The floats of the last sharded flow's tail (see {@link RingFlow#tail}): every worker keeps their moments. */
  private int tailFloats;

  @Override
  public boolean shardUpdates(boolean canHere) throws IOException {
    if (size == 1) {
      return false;
    }
    String[] all = gather(canHere ? "shard" : "whole", 60_000);
    sharded = Arrays.stream(all).allMatch("shard"::equals);
    return sharded;
  }

  @Override
  Flow startSharded(float[] grads, double count, float[] params, Optimizer optimizer,
                    ModelRunner.DenseWeights dense) {
    Flow f = new Flow(grads, count, true, false);
    f.params = params;
    f.optimizer = optimizer;
    shardedSinceSync = true;
    RingFlow r = new RingFlow(f, dense, rank, size);
    tailFloats = r.tail;
    if (optimizer instanceof Adam adam) {
      // This worker updates its own chunks and the tail only, so it keeps only their moments.
      int[][] updated = r.updatedHere(rank);
      adam.keepOnly(updated[0], updated[1]);
    }
    return launch(r);
  }

  /**
   * Gathers Adam's moments: each worker's chunks (the others' zeroed) summed over the ring, which
   * adds to each value only zeros. SGD has nothing to gather.
   */
  @Override
  public void syncOptimizer(Optimizer optimizer) throws IOException {
    if (!shardedSinceSync) {
      return;
    }
    shardedSinceSync = false;
    if (optimizer instanceof Adam adam) {
      float[][] whole = adam.wholeMoments();
      for (float[] moment : whole) {
        if (rank > 0) {
          // Every worker has the tail's moments; worker 0's count once.
          Arrays.fill(moment, 0, tailFloats, 0f);
        }
        allreduce(moment, new double[] {1});
      }
      // Whole until the next sharded step keeps this worker's share again.
      adam.restoreWhole(whole[0], whole[1]);
    }
  }

  @Override
  Flow start(float[] data, double count, boolean mean, boolean ready) {
    return launch(new RingFlow(new Flow(data, count, mean, ready), null, rank, size));
  }

  private Flow launch(RingFlow r) {
    Flow f = r.flow;
    current = r;
    if (r.dense != null) {
      f.factors = (k, w, inputs, units, x, dy, n) -> factors.take(r, k, w, x, dy, n);
      f.afterReady = from -> updateFactored(r, from);
    }
    f.tasks = new Future<?>[] {submit(f.failing(() -> send(r))), submit(f.failing(() -> receive(r)))};
    return f;
  }

  /**
   * The backward pass's thread, told that everything from {@code from} on is final: once that
   * includes the factored layer, that layer's rows of this worker's chunks are made and updated
   * here ({@link Factors#update}). A failure abandons the flow, and the step fails where it ends.
   */
  private void updateFactored(RingFlow r, int from) {
    Flow f = r.flow;
    synchronized (f) {
      if (!r.decided || !r.factored || r.factorsDone || from > r.factoredFrom()) {
        return;
      }
    }
    try {
      factors.update(r, (float) (1 / f.total));
    } catch (IOException | RuntimeException e) {
      f.fail(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      f.fail(new IOException("gradient exchange interrupted", e));
    }
  }

  /**
   * The sender: the array's length and this worker's count, the counts it relays, then each
   * chunk in the schedule (see the class comment) once it is final here.
   */
  private Void send(RingFlow r) throws IOException, InterruptedException {
    Flow f = r.flow;
    float[] data = f.data;
    int n = data.length;
    int c = r.ringChunks();
    out.writeInt(n);
    out.writeDouble(f.count);
    out.flush();
    for (int k = 1; k < size - 1; k++) {
      int k0 = k;
      f.await(() -> r.countsKnown > k0);
      out.writeDouble(r.counts[(rank - k + size) % size]);
      out.flush();
    }
    f.await(() -> r.decided);
    MappedLane lane = links.sendLane(r.places());
    synchronized (f) {
      r.sendLane = lane;
      r.laneKnown = true;
    }
    f.changed();
    if (r.factored) {
      factors.send(r, lane);
    }
    for (int m : RingFlow.schedule(c, lag())) {
      int[] parts = m < c ? r.summed[m] : null;
      if (m < c && rank != owner(m) && parts.length > 0) {
        int q = m;
        int from = r.bounds[q + 1];
        if (rank == (owner(q) + 1) % size) {
          links.awaitFlushing(f, () -> f.isReady(from));
        } else {
          links.awaitFlushing(f, () -> r.reduced[q]);
        }
        for (int i = 0; i < parts.length; i += 2) {
          links.send(lane, parts[i], data, parts[i], parts[i + 1]);
        }
      }
      int q = m - c;
      if (q >= 0 && next != owner(q)) {
        if (rank == owner(q)) {
          links.awaitFlushing(f, () -> r.reduced[q]);
        } else {
          links.awaitFlushing(f, () -> r.gathered[q]);
        }
        if (lane != null && f.params != null && rank == owner(q)) {
          // The receiver put the chunk's parameters into the lane as it updated them.
          links.ring();
        } else {
          float[] from = f.params != null ? f.params : data;
          links.send(lane, n + r.bounds[q + 1], from, r.bounds[q + 1], r.bounds[q]);
        }
      }
    }
    out.flush();
    return null;
  }

  /** Floats a received partial sum is added in at a time (64 KB): it and its chunk's piece stay in the cache. */
  static final int PIECE = 1 << 14;

  /**
   * The receiver: the predecessor's messages in its sender's order. A partial sum is added to
   * this worker's copy of the chunk once the backward pass has finished it (at the owner, the
   * sum is then complete, and divided by the total count for a mean); a sum replaces the chunk.
   */
  private Void receive(RingFlow r) throws IOException, InterruptedException {
    Flow f = r.flow;
    float[] data = f.data;
    int n = data.length;
    int c = r.ringChunks();
    float inv = 0;
    try {
      int got = in.readInt();
      if (got != n) {
        throw new IOException("expected " + n + " floats but worker " + prev + " sent " + got);
      }
      for (int k = 1; k < size; k++) {
        double v = in.readDouble();
        synchronized (f) {
          r.counts[(rank - k + size) % size] = v;
          r.countsKnown++;
        }
        f.changed();
      }
      double total = 0;
      for (double v : r.counts) {
        total += v;
      }
      f.total = total;
      inv = (float) (1 / total);
      synchronized (f) {
        r.decide(factors);
      }
      f.changed();
      if (r.factored && !factoredBefore && rank == 0) {
        LOG.info("the weight gradient of the dense layer at parameter {} ({} x {}) travels as its factors: {} floats"
            + " of {} samples instead of {}", r.dense.weightOffset(), r.dense.inputs(), r.dense.units(),
            (long) r.first[size] * (r.dense.inputs() + r.dense.units()), r.first[size],
            (long) r.dense.inputs() * r.dense.units());
      }
      factoredBefore |= r.factored;
      MappedLane lane = links.receiveLane(r.places());
      r.receiveLane = lane;
      if (r.factored) {
        factors.receive(r, lane);
      }
      for (int m : RingFlow.schedule(c, lag())) {
        if (m < c && prev != owner(m)) {
          int q = m;
          int from = r.bounds[q + 1];
          boolean completes = rank == owner(q);
          int[] parts = r.summed[q];
          if (completes && r.factored && r.bounds[q + 1] < r.factoredTo() && r.bounds[q] > r.factoredFrom()) {
            // The backward pass's thread makes and updates the factored rows (Factors.update).
            f.await(() -> r.factorsDone);
          }
          for (int i = 0; i < parts.length; i += 2) {
            if (lane != null) {
              links.awaitDoorbell();
            }
            f.awaitReady(from);
            // Piece by piece, each added, divided and (this worker's share) updated while it is in
            // the cache: one pass over the chunk's memory instead of one per operation. The same
            // operations on every element as one at a time.
            for (int at = parts[i]; at < parts[i + 1]; at += PIECE) {
              int p = Math.min(PIECE, parts[i + 1] - at);
              links.receivePart(lane, at, partial, 0, p);
              if (completes && f.mean) {
                for (int j = 0; j < p; j++) {
                  data[at + j] = (partial[j] + data[at + j]) * inv;
                }
              } else {
                for (int j = 0; j < p; j++) {
                  data[at + j] = partial[j] + data[at + j];
                }
              }
              if (completes && f.params != null) {
                // This worker's share of the update; the backward pass is done with these parameters.
                r.update(at, p);
              }
            }
          }
          synchronized (f) {
            r.reduced[q] = true;
          }
          f.changed();
        }
        int q = m - c;
        if (q >= 0 && rank != owner(q)) {
          int from = r.bounds[q + 1];
          int len = r.bounds[q] - from;
          links.receive(lane, n + from, f.params != null ? f.params : data, from, len);
          synchronized (f) {
            r.gathered[q] = true;
          }
          f.changed();
        }
      }
    } catch (IOException e) {
      throw e.getMessage() != null && e.getMessage().startsWith("gradient exchange") ? e : Wire.silent(prev, e);
    }
    return null;
  }

  /**
   * Waits for the array, then passes every worker's {@code stats} round the ring (with a sharded
   * flow's tail, see {@link Tail}); each worker adds them up in rank order, so all get the same
   * sums.
   */
  @Override
  void finish(Flow f, double[] stats) throws IOException {
    await(f.tasks[0]);
    await(f.tasks[1]);
    double[][] all = new double[size][];
    all[rank] = stats.clone();
    try {
      if (current != null && current.flow == f && current.tail > 0) {
        tail.share(current, all);
      } else {
        links.allGather(all, rank, links::writeStats, () -> links.readStats(new double[stats.length]));
      }
    } catch (IOException e) {
      throw Wire.silent(prev, e);
    }
    sumInRankOrder(all, stats);
  }

  @Override
  public void close() throws IOException {
    stopHelpers();
    if (links != null) {
      links.close();
    }
  }

  @Override
  public String toString() {
    return "RingAllreduce(rank " + rank + " of " + size + (links == null ? "" : ", " + links) + ")";
  }
}
