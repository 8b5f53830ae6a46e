package dev.convspark.ml.exchange;

import dev.convspark.tensor.backend.ModelRunner;
import java.util.Arrays;

/**
 * One flow of a {@link RingAllreduce} in progress: where its chunks lie and in which order their
 * messages go, which chunks this worker has summed or received in full, the workers' sample
 * counts, and whether the largest dense layer's weight gradient travels as its factors. Its
 * fields are read and written under the lock of its {@link SocketExchange.Flow}.
 */
final class RingFlow {
  final SocketExchange.Flow flow;
  private final int size;
  /** Chunk q is floats {@code [bounds[q + 1], bounds[q])} (see {@link #bounds}). */
  final int[] bounds;
  /** Chunk q's partial sum (or, at its owner, the sum) is in the array. */
  final boolean[] reduced;
  /** Chunk q's sum has arrived in the array. */
  final boolean[] gathered;
  final double[] counts;
  int countsKnown = 1;
  /** The dense layer whose weight gradient may travel as factors, or null. */
  final ModelRunner.DenseWeights dense;
  /** Every worker's count is known, and with them {@link #factored}. */
  boolean decided;
  /** Whether {@link #dense}'s weight gradient travels as factors in this flow (see {@link #decide}). */
  boolean factored;
  /** Where each worker's samples start among every worker's, in rank order; their total last. */
  final int[] first;
  /** The lane the sender chose for this flow (null: the stream), once {@link #laneKnown}. */
  MappedLane sendLane;
  boolean laneKnown;
  /** Chunk q's parts that travel in the reduce-scatter (see {@link #outsideFactored}), once {@link #decided}. */
  int[][] summed;
  /** This worker's factors are in place. */
  boolean ownFactors;
  /** The hops of the factors' all-gather received so far. */
  int factorHops;
  /** This worker's rows of the factored gradient are made and updated (see {@code Factors.update}). */
  boolean factorsDone;
  /**
   * Floats {@code [0, tail)}, the first chunk of the array, are summed by every worker from every
   * worker's copy (see {@link #tail}); 0 when they go round the ring as the other chunks do.
   */
  final int tail;
  /** The lane the receiver found for this flow (null: the stream), for the tail's all-gather. */
  MappedLane receiveLane;

  RingFlow(SocketExchange.Flow flow, ModelRunner.DenseWeights dense, int rank, int size) {
    this.flow = flow;
    this.size = size;
    this.dense = dense;
    this.bounds = bounds(flow.data.length, size, dense);
    int c = bounds.length - 1;
    this.tail = tail(bounds, size, flow.params != null, dense);
    this.reduced = new boolean[c];
    this.gathered = new boolean[c];
    this.counts = new double[size];
    this.first = new int[size + 1];
    counts[rank] = flow.count;
  }

  /**
   * Once every count is known (the receiver, under the flow's lock): the dense layer's weight
   * gradient travels as factors when the workers' samples, each an input row and an output
   * gradient row, are fewer floats than the gradient, as they are at small batches
   * ({@code samples x (inputs + units) < inputs x units}; deep-mnist's first dense layer at a
   * global batch of 50: 0.2 M floats against 3.2 M). Only in sharded flows. A function of the
   * counts alone, so every worker decides alike; {@code factors} then has room for them.
   */
  void decide(Factors factors) {
    for (int u = 0; u < size; u++) {
      first[u + 1] = first[u] + (int) counts[u];
    }
    long samples = first[size];
    factored = dense != null && flow.params != null && dense.fewerAsFactors(samples);
    if (factored) {
      factors.reserve(first[size], dense);
    }
    summed = new int[bounds.length - 1][];
    for (int q = 0; q < summed.length; q++) {
      summed[q] = outsideFactored(bounds[q + 1], bounds[q]);
    }
    decided = true;
  }

  /**
   * The floats of the lane's places this flow takes: a chunk's two messages, the factors, then
   * the tail's messages (one a hop, see {@link #tailAt}).
   */
  long places() {
    return tailAt(size);
  }

  /** Where in the lane the tail's message of hop {@code k} (from 1) lies: each hop has its own place. */
  long tailAt(int k) {
    long n = flow.data.length;
    return 2 * n + (factored ? (long) first[size] * (dense.inputs() + dense.units()) : 0) + (long) (k - 1) * tail;
  }

  /** The chunks that go round the ring, the tail's (when shared) not among them. */
  int ringChunks() {
    return bounds.length - 1 - (tail > 0 ? 1 : 0);
  }

  /**
   * The parameters worker {@code rank} updates in a sharded flow, as ascending ranges
   * {@code {starts, ends}}: the tail, which every worker updates, then its own chunks, q = rank,
   * rank + N, ... (ascending in the array from the highest q): 1/N of the rest.
   */
  int[][] updatedHere(int rank) {
    int c = ringChunks();
    int owned = c > rank ? (c - 1 - rank) / size + 1 : 0;
    int t = tail > 0 ? 1 : 0;
    int[] starts = new int[owned + t];
    int[] ends = new int[owned + t];
    if (t > 0) {
      ends[0] = tail;
    }
    for (int i = 0; i < owned; i++) {
      int q = rank + (owned - 1 - i) * size;
      starts[t + i] = bounds[q + 1];
      ends[t + i] = bounds[q];
    }
    return new int[][] {starts, ends};
  }

  /**
   * The tail of a sharded flow: its last chunk, at the array's start, which holds the first
   * layers' gradients and so is final only when the backward pass ends. Round the ring it would
   * take 2 (N - 1) hops after that (its partial sums to its owner, then the updated parameters
   * back), each a hand-over between threads; instead every worker's copy goes round once (an
   * all-gather: N - 1 hops) with its statistics, and every worker adds the N copies in rank order
   * and applies the optimizer to them, all alike (the optimizer updates element by element). Not
   * where the tail holds weights of {@code dense} (they may travel as factors), nor where it is the
   * only chunk.
   */
  static int tail(int[] bounds, int size, boolean sharded, ModelRunner.DenseWeights dense) {
    int c = bounds.length - 1;
    if (!sharded || size < 2 || c < 2 || (dense != null && bounds[c - 1] > dense.weightOffset())) {
      return 0;
    }
    return bounds[c - 1];
  }

  /** Where the factored weights start in the array ({@code [0, 0)} with {@link #factoredTo} when not factored). */
  int factoredFrom() {
    return factored ? dense.weightOffset() : 0;
  }

  int factoredTo() {
    return factored ? dense.weightOffset() + dense.inputs() * dense.units() : 0;
  }

  /**
   * The owner's update of parameters {@code [at, at + p)} from their mean gradient; with a lane to
   * the successor, the updated parameters go straight into their place in it while they are in
   * the cache (the sender then only rings for the chunk).
   */
  void update(int at, int p) throws java.io.IOException, InterruptedException {
    flow.optimizer.update(flow.params, flow.data, at, at + p);
    if (!laneKnown) {
      flow.await(() -> laneKnown);
    }
    if (sendLane != null) {
      sendLane.put(flow.data.length + at, flow.params, at, p);
    }
  }

  /**
   * The parts of {@code [from, to)} whose gradient travels in the reduce-scatter: all of it, or,
   * in a factored flow, what lies outside the factored weights (at most two ranges), as
   * {@code {start, end, start, end}}.
   */
  private int[] outsideFactored(int from, int to) {
    int a = factoredFrom();
    int b = factoredTo();
    if (b <= from || a >= to) {
      return new int[] {from, to};
    }
    int[] parts = new int[4];
    int k = 0;
    if (from < a) {
      parts[k++] = from;
      parts[k++] = a;
    }
    if (b < to) {
      parts[k++] = b;
      parts[k++] = to;
    }
    return Arrays.copyOf(parts, k);
  }

  /**
   * Where the chunks of an {@code n}-float array summed by {@code size} workers lie: chunk q is
   * floats {@code [b[q + 1], b[q])}, counted from the end of the array ({@code b[0] = n}, the last
   * entry 0). Chunks of {@link RingAllreduce#chunk} floats, except that the weights of
   * {@code dense} (when not null) begin and end chunks of their own: before them lie the first
   * layers' gradients, which the backward pass finishes last, and the smaller the chunk that holds
   * only them, the less of the exchange is left once the backward pass ends. A function of the
   * array's length, the run's size and the model alone, as the order of the additions must be.
   */
  static int[] bounds(int n, int size, ModelRunner.DenseWeights dense) {
    int per = RingAllreduce.chunk(n, size);
    int[] cuts = {n, 0};
    if (dense != null) {
      int from = dense.weightOffset();
      int to = from + dense.inputs() * dense.units();
      cuts = new int[] {n, to, from, 0};
    }
    int[] b = new int[n / per + cuts.length + 1];
    int k = 0;
    b[k++] = n;
    for (int i = 0; i + 1 < cuts.length; i++) {
      for (int end = cuts[i]; end > cuts[i + 1]; end -= per) {
        b[k++] = Math.max(cuts[i + 1], end - per);
      }
    }
    if (k == 1) {
      // An empty array: one empty chunk.
      b[k++] = 0;
    }
    return Arrays.copyOf(b, k);
  }

  /**
   * The order of a flow's chunk messages, the same on every connection: chunk q's reduce-scatter
   * message as q, its all-gather message as {@code c + q}. Round t holds the reduce-scatter of
   * chunk t, then the all-gather of chunk t - {@code lag}; but the last chunk's reduce-scatter
   * comes just before its all-gather. That chunk holds the first layers' gradients, which the
   * backward pass finishes last: in its own round it would hold up the all-gathers of the chunks
   * before it, whose sums are ready while the backward pass still computes. (In a sharded flow
   * those gradients are the {@link #tail}, outside the schedule; the last chunk then holds the
   * next layer's.)
   */
  static int[] schedule(int c, int lag) {
    int[] order = new int[2 * c];
    int k = 0;
    for (int t = 0; t < c + lag; t++) {
      if (t < c - 1) {
        order[k++] = t;
      }
      int q = t - lag;
      if (q == c - 1) {
        order[k++] = q;
      }
      if (q >= 0 && q < c) {
        order[k++] = c + q;
      }
    }
    return order;
  }
}
