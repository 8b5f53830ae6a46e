package dev.convspark.ml.exchange;

import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.kernels.FastKernels;
import dev.convspark.tensor.kernels.Kernels;
import dev.convspark.tensor.kernels.ThreadPool;

/**
 * A ring worker's factors of a factored flow (see {@link RingAllreduce}): every worker's inputs and
 * output gradients of the factored dense layer, in rank order, and the multiply that makes a range
 * of their summed weight gradient. The buffers are kept between steps.
 */
final class Factors implements AutoCloseable {

  /** The layer's inputs of every worker's samples, {@code samples x inputs}. */
  float[] xs = new float[0];
  /** The layer's output gradients of every worker's samples, {@code samples x units}. */
  float[] dys = new float[0];
  /** One row of the gradient, for rows a range holds only part of. */
  private float[] row = new float[0];
  /** The kernels (one thread: the receiver's) that multiply; made at the first multiply. */
  private ThreadPool threads;
  private Kernels kernels;

  /** Makes room for the factors of {@code samples} samples of {@code dense}. */
  void reserve(int samples, ModelRunner.DenseWeights dense) {
    int nx = samples * dense.inputs();
    int ndy = samples * dense.units();
    xs = xs.length >= nx ? xs : new float[nx];
    dys = dys.length >= ndy ? dys : new float[ndy];
  }

  /** Copies a worker's {@code n} samples' factors into their place, from sample {@code first}. */
  void put(int first, ModelRunner.DenseWeights dense, float[] x, float[] dy, int n) {
    System.arraycopy(x, 0, xs, first * dense.inputs(), n * dense.inputs());
    System.arraycopy(dy, 0, dys, first * dense.units(), n * dense.units());
  }

  /**
   * The sum over {@code samples} samples of {@code dense}'s weight gradient, {@code xs^T dys}, for
   * the floats {@code [a, b)} of {@code data} (within the layer's weights): the rows that lie whole
   * in the range in one multiply, in place; a row it holds part of through {@link #row}. Every
   * element sums the samples in one order, the same at every step.
   */
  void multiply(ModelRunner.DenseWeights dense, int samples, float[] data, int a, int b) {
    if (kernels == null) {
      threads = new ThreadPool(1);
      kernels = new FastKernels(threads);
    }
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

  @Override
  public void close() {
    if (threads != null) {
      threads.close();
    }
  }
}
