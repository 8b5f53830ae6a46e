package dev.convspark.tensor.kernels;

/**
 * The numeric kernels the CPU layers are made of. Arrays are row-major; images are NHWC. Two
 * implementations: {@link ReferenceKernels}, plain loops that are obviously right, and
 * {@link FastKernels}, blocked, vectorised and multi-threaded, checked against the reference.
 */
public interface Kernels {

  /**
   * {@code C = op(A) * op(B) + beta * C}, where op(A) is m x k and op(B) is k x n, op transposing
   * when {@code transA}/{@code transB}. {@code lda}, {@code ldb}, {@code ldc} are the row strides
   * of A, B and C as stored.
   */
  void gemm(boolean transA, boolean transB, int m, int n, int k,
            float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
            float beta, float[] c, int cOff, int ldc);

  /**
   * Unfolds image patches: for every output pixel of every sample, one row of
   * {@code kh * kw * g.channels()} values ordered (kernel row, kernel column, channel), zeros
   * where the window hangs over the padded border. {@code col} has {@code n * outH * outW} rows.
   */
  void im2col(float[] x, int n, ConvGeometry g, float[] col);

  /** The adjoint of {@link #im2col}: adds every row of {@code col} back into {@code dx}, which it first zeroes. */
  void col2im(float[] col, int n, ConvGeometry g, float[] dx);

  /**
   * Max pooling: {@code y} gets each window's maximum (padding never wins) and {@code argmax} the
   * flat index into {@code x} it came from.
   */
  void maxPool(float[] x, int n, ConvGeometry g, float[] y, int[] argmax);

  /**
   * Routes pooled gradients back: {@code dx} (which it first zeroes, {@code n} samples of
   * {@code g}'s input) gets {@code dy[o]} added at {@code argmax[o]} for every output {@code o};
   * unless {@code x} is null, only where {@code x[argmax[o]] > 0} (the pool's input is a ReLU's
   * output, whose backward pass this then is as well).
   */
  void maxPoolBackward(float[] dy, int[] argmax, int n, ConvGeometry g, float[] x, float[] dx);

  /** {@code y[i] = max(x[i], 0)} for {@code i < len}. */
  void relu(float[] x, float[] y, int len);

  /** {@code dx[i] = y[i] > 0 ? dy[i] : 0} for {@code i < len}, where {@code y} is the ReLU's output. */
  void reluBackward(float[] y, float[] dy, float[] dx, int len);

  /** Sets every row of {@code y} ({@code rows x cols}) to the bias {@code params[off .. off+cols)}. */
  void fillRows(float[] params, int off, float[] y, int rows, int cols);

  /** Column sums: {@code grads[off + j] = sum over rows of dy[r * cols + j]} (the bias gradient). */
  void sumRows(float[] dy, int rows, int cols, float[] grads, int off);

  /**
   * Writes the transpose of row-major {@code src} ({@code rows x cols}) into {@code dst} from
   * {@code off} ({@code cols x rows}). Here on the calling thread.
   */
  default void transpose(float[] src, int rows, int cols, float[] dst, int off) {
    Transpose.into(src, rows, cols, dst, off);
  }

  /**
   * Convolution forward over {@code n} samples: sets {@code y} ({@code n * outputPixels} rows of
   * {@code filters}) to the bias {@code params[bOff .. bOff + filters)} in every row plus
   * {@code patches(x) * W}, W being {@code params[wOff ..]} laid out {@code patchSize x filters};
   * then, when {@code relu}, replaces {@code y} by {@code max(y, 0)}. What {@code y} held before is
   * not read. Here: the bias ({@link #fillRows}), every patch unfolded into one matrix
   * ({@link #im2col}), then one multiply added to it.
   */
  default void convForward(float[] x, int n, ConvGeometry g, float[] params, int wOff, int bOff, int filters,
                           float[] y, boolean relu, ConvBuffers b) {
    int rows = n * g.outputPixels();
    fillRows(params, bOff, y, rows, filters);
    float[] col = b.col(rows * g.patchSize());
    im2col(x, n, g, col);
    gemm(false, false, rows, filters, g.patchSize(), col, 0, g.patchSize(), params, wOff, filters, 1f, y, 0, filters);
    if (relu) {
      relu(y, y, rows * filters);
    }
  }

  /**
   * Convolution backward, after {@link #convForward} of the same {@code x} with the same buffers:
   * writes the weight gradient into {@code grads[wOff ..]} ({@code patchSize x filters}) and, unless
   * {@code dx} is null, the input gradient into {@code dx}. The bias gradient is the caller's.
   */
  default void convBackward(float[] x, float[] dy, int n, ConvGeometry g, float[] params, int wOff, int filters,
                            float[] grads, float[] dx, ConvBuffers b) {
    int rows = n * g.outputPixels();
    int patch = g.patchSize();
    float[] col = b.col(rows * patch);
    // dW = patches^T dy, computed as its transpose dy^T patches, which reads the large patch matrix
    // in place instead of packing it, then transposed into place.
    float[] dwT = b.dwT(filters * patch);
    gemm(true, false, filters, patch, rows, dy, 0, filters, col, 0, patch, 0f, dwT, 0, patch);
    transpose(dwT, filters, patch, grads, wOff);
    if (dx == null) {
      return;
    }
    float[] dcol = b.dcol(rows * patch);
    gemm(false, true, rows, patch, filters, dy, 0, filters, params, wOff, filters, 0f, dcol, 0, patch);
    col2im(dcol, n, g, dx);
  }

  /** Threads used by the kernels (1 for the reference). */
  int threads();

  /** A body over the indices {@code [from, to)} of a range (samples of a batch, channels). */
  interface Range {
    void run(int from, int to);
  }

  /**
   * Runs {@code body} over the samples {@code [0, n)} of a batch ({@code sampleSize} values
   * each) in disjoint ranges, on the kernels' threads where the work is worth handing out: for a
   * layer's own per-value loops (dropout's masks). Here on the calling thread, in one range.
   */
  default void forSampleRanges(int n, int sampleSize, Range body) {
    body.run(0, n);
  }
}
