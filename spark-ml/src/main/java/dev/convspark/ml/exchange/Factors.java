package dev.convspark.ml.exchange;

import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.kernels.Kernels;
import java.io.IOException;

/**
 * A ring worker's part in the factored flows of a {@link RingAllreduce}: its factors of the
 * factored dense layer and every other worker's (their inputs and output gradients, in rank
 * order), their all-gather round the ring before the chunks, and, at a chunk's owner, the
 * multiply that makes its rows of the summed weight gradient and their update, on the backward
 * pass's thread with its kernels. The buffers are kept between steps.
 */
final class Factors {

  private final int rank;
  private final int size;
  private final RingLinks links;
  /** The layer's inputs of every worker's samples, {@code samples x inputs}. */
  private float[] xs = new float[0];
  /** The layer's output gradients of every worker's samples, {@code samples x units}. */
  private float[] dys = new float[0];
  /** One row of the gradient, for rows a range holds only part of. */
  private float[] row = new float[0];
  /** The backward pass's kernels, handed over with this step's factors. */
  private Kernels kernels;

  Factors(int rank, int size, RingLinks links) {
    this.rank = rank;
    this.size = size;
    this.links = links;
  }

  /** Makes room for the factors of {@code samples} samples of {@code dense}. */
  void reserve(int samples, ModelRunner.DenseWeights dense) {
    int nx = samples * dense.inputs();
    int ndy = samples * dense.units();
    xs = xs.length >= nx ? xs : new float[nx];
    dys = dys.length >= ndy ? dys : new float[ndy];
  }

  /**
   * The backward pass's thread, at a dense layer: in a factored flow, the factored layer's input
   * and output gradient go into this worker's place among every worker's factors, for the sender.
   * False for any other layer, or when {@code r} is not factored.
   */
  boolean take(RingFlow r, Kernels k, int weightOffset, float[] x, float[] dy, int n)
      throws IOException, InterruptedException {
    SocketExchange.Flow f = r.flow;
    f.await(() -> r.decided);
    if (!r.factored || weightOffset != r.dense.weightOffset()) {
      return false;
    }
    if (n != (int) r.counts[rank]) {
      throw new IllegalStateException("worker " + rank + " announced " + r.counts[rank] + " samples but its"
          + " backward pass has " + n);
    }
    kernels = k;
    System.arraycopy(x, 0, xs, r.first[rank] * r.dense.inputs(), n * r.dense.inputs());
    System.arraycopy(dy, 0, dys, r.first[rank] * r.dense.units(), n * r.dense.units());
    synchronized (f) {
      r.ownFactors = true;
    }
    f.changed();
    return true;
  }

  /**
   * The sender, before the chunks: this worker's own factors once the backward pass has handed
   * them over, then, hop by hop, those its receiver got from the predecessor, so that every worker
   * ends with every worker's. In the lane, each worker's factors have places of their own after the
   * chunks' (see {@link RingFlow#places}).
   */
  void send(RingFlow r, MappedLane lane) throws IOException, InterruptedException {
    for (int k = 1; k < size; k++) {
      int hop = k;
      links.awaitFlushing(r.flow, () -> hop == 1 ? r.ownFactors : r.factorHops >= hop - 1);
      transfer(r, lane, (rank - k + 1 + size) % size, true);
    }
    links.out.flush();
  }

  /** The receiver, before the chunks: the factors of every other worker, hop by hop. */
  void receive(RingFlow r, MappedLane lane) throws IOException {
    for (int k = 1; k < size; k++) {
      transfer(r, lane, (rank - k + size) % size, false);
      synchronized (r.flow) {
        r.factorHops = k;
      }
      r.flow.changed();
    }
  }

  /** Sends or receives worker {@code origin}'s factors: its inputs, then its output gradients. */
  private void transfer(RingFlow r, MappedLane lane, int origin, boolean send) throws IOException {
    long n = r.flow.data.length;
    int in = r.dense.inputs();
    int units = r.dense.units();
    int first = r.first[origin];
    int count = r.first[origin + 1] - first;
    int xAt = (int) (2 * n + (long) first * in);
    int dyAt = (int) (2 * n + (long) r.first[size] * in + (long) first * units);
    if (send) {
      links.send(lane, xAt, xs, first * in, (first + count) * in);
      links.send(lane, dyAt, dys, first * units, (first + count) * units);
    } else {
      links.receive(lane, xAt, xs, first * in, count * in);
      links.receive(lane, dyAt, dys, first * units, count * units);
    }
  }

  /**
   * The backward pass's thread, once it is done with the factored layer (so with its weights) and
   * every worker's factors are in: this worker's part of the factored gradient, its mean
   * ({@code inv}: one over the total sample count) and update. The chunks that hold nothing else
   * are then reduced, and gathered as soon as the schedule reaches them, never waiting behind
   * another message.
   *
   * <p>Here rather than on the receiver: a worker with as many threads as cores (one-core
   * executors) would otherwise have one more busy thread than cores while the backward pass goes
   * on, and the operating system shares the cores among threads, not among workers: two such
   * executors on one host took turns falling behind, and each step waited for the slower (two
   * executors of one core on 2 cores: 4.4 ms a step between their ends of the backward pass, 1.7
   * ms with the multiply here). The backward pass's kernels also use every thread the worker has.
   */
  void update(RingFlow r, float inv) throws IOException, InterruptedException {
    SocketExchange.Flow f = r.flow;
    float[] data = f.data;
    int c = r.bounds.length - 1;
    f.await(() -> r.ownFactors && r.factorHops >= size - 1);
    for (int q = rank; q < c; q += size) {
      int fa = Math.max(r.bounds[q + 1], r.factoredFrom());
      int fb = Math.min(r.bounds[q], r.factoredTo());
      if (fa < fb) {
        multiply(r.dense, r.first[size], data, fa, fb);
      }
    }
    f.awaitReady(r.factoredFrom());
    for (int q = rank; q < c; q += size) {
      int fa = Math.max(r.bounds[q + 1], r.factoredFrom());
      int fb = Math.min(r.bounds[q], r.factoredTo());
      for (int at = fa; at < fb; at += RingAllreduce.PIECE) {
        int p = Math.min(RingAllreduce.PIECE, fb - at);
        for (int j = at; j < at + p; j++) {
          data[j] *= inv;
        }
        r.update(at, p);
      }
      if (fa < fb && r.summed[q].length == 0) {
        synchronized (f) {
          r.reduced[q] = true;
        }
        f.changed();
      }
    }
    synchronized (f) {
      r.factorsDone = true;
    }
    f.changed();
  }

  /**
   * The sum over {@code samples} samples of {@code dense}'s weight gradient, {@code xs^T dys}, for
   * the floats {@code [a, b)} of {@code data} (within the layer's weights): the rows that lie whole
   * in the range in one multiply, in place; a row it holds part of through {@link #row}. Every
   * element sums the samples in one order, the same at every step.
   */
  private void multiply(ModelRunner.DenseWeights dense, int samples, float[] data, int a, int b) {
    int w = dense.weightOffset();
    int in = dense.inputs();
    int units = dense.units();
    int r0 = (a - w) / units;
    int r1 = (b - w + units - 1) / units;
    int full0 = (a - w) % units == 0 ? r0 : r0 + 1;
    int full1 = (b - w) % units == 0 ? r1 : r1 - 1;
    if (full0 < full1) {
      kernels.gemm(true, false, full1 - full0, units, samples, xs, full0, in, dys, 0, units, 0f, data,
          w + full0 * units, units);
    }
    for (int i = r0; i < r1; i++) {
      if (i >= full0 && i < full1) {
        i = full1 - 1;
        continue;
      }
      row = row.length >= units ? row : new float[units];
      kernels.gemm(true, false, 1, units, samples, xs, i, in, dys, 0, units, 0f, row, 0, units);
      int lo = Math.max(a, w + i * units);
      int hi = Math.min(b, w + (i + 1) * units);
      System.arraycopy(row, lo - (w + i * units), data, lo, hi - lo);
    }
  }
}
