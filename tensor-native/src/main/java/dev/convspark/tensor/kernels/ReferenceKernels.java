package dev.convspark.tensor.kernels;

/**
 * The kernels as plain loops, one output at a time: slow and obviously right. Single-threaded, or
 * given a pool, a large product's rows shared among its threads: each output is still one loop
 * over k in the same order, so the results are the same bit for bit (the GPU check's reference on
 * a machine's every core; its 20 training steps of deep-mnist on one thread take minutes).
 */
public final class ReferenceKernels implements Kernels, AutoCloseable {

  /** Multiply-adds below which a product stays on the calling thread. */
  private static final long PARALLEL_FROM = 1 << 18;

  private final ThreadPool pool;

  /** The reference on the calling thread alone. */
  public ReferenceKernels() {
    this(null);
  }

  /** The reference with large products' rows shared among {@code pool}'s threads (null: none), which it closes. */
  public ReferenceKernels(ThreadPool pool) {
    this.pool = pool;
  }

  @Override
  public void gemm(boolean transA, boolean transB, int m, int n, int k,
                   float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                   float beta, float[] c, int cOff, int ldc) {
    if (pool == null || m < 2 || (long) m * n * k < PARALLEL_FROM) {
      rows(0, m, transA, transB, n, k, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
      return;
    }
    int parts = Math.min(m, 4 * pool.threads());
    pool.parallelFor(parts, t -> rows((int) ((long) m * t / parts), (int) ((long) m * (t + 1) / parts), transA, transB,
        n, k, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc));
  }

  /** Rows {@code from} to {@code to} of {@link #gemm}'s C. */
  private static void rows(int from, int to, boolean transA, boolean transB, int n, int k,
                           float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                           float beta, float[] c, int cOff, int ldc) {
    for (int i = from; i < to; i++) {
      for (int j = 0; j < n; j++) {
        float s = 0;
        for (int p = 0; p < k; p++) {
          float av = transA ? a[aOff + p * lda + i] : a[aOff + i * lda + p];
          float bv = transB ? b[bOff + j * ldb + p] : b[bOff + p * ldb + j];
          s += av * bv;
        }
        int ci = cOff + i * ldc + j;
        c[ci] = beta == 0 ? s : s + beta * c[ci];
      }
    }
  }

  @Override
  public void im2col(float[] x, int n, ConvGeometry g, float[] col) {
    int row = 0;
    for (int s = 0; s < n; s++) {
      for (int oh = 0; oh < g.outHeight(); oh++) {
        for (int ow = 0; ow < g.outWidth(); ow++, row++) {
          int q = row * g.patchSize();
          for (int kh = 0; kh < g.kernelHeight(); kh++) {
            for (int kw = 0; kw < g.kernelWidth(); kw++) {
              int ih = oh * g.stride() - g.padTop() + kh;
              int iw = ow * g.stride() - g.padLeft() + kw;
              for (int ch = 0; ch < g.channels(); ch++, q++) {
                boolean inside = ih >= 0 && ih < g.height() && iw >= 0 && iw < g.width();
                col[q] = inside ? x[s * g.inputSize() + (ih * g.width() + iw) * g.channels() + ch] : 0f;
              }
            }
          }
        }
      }
    }
  }

  @Override
  public void col2im(float[] col, int n, ConvGeometry g, float[] dx) {
    java.util.Arrays.fill(dx, 0, n * g.inputSize(), 0f);
    int row = 0;
    for (int s = 0; s < n; s++) {
      for (int oh = 0; oh < g.outHeight(); oh++) {
        for (int ow = 0; ow < g.outWidth(); ow++, row++) {
          int q = row * g.patchSize();
          for (int kh = 0; kh < g.kernelHeight(); kh++) {
            for (int kw = 0; kw < g.kernelWidth(); kw++) {
              int ih = oh * g.stride() - g.padTop() + kh;
              int iw = ow * g.stride() - g.padLeft() + kw;
              for (int ch = 0; ch < g.channels(); ch++, q++) {
                if (ih >= 0 && ih < g.height() && iw >= 0 && iw < g.width()) {
                  dx[s * g.inputSize() + (ih * g.width() + iw) * g.channels() + ch] += col[q];
                }
              }
            }
          }
        }
      }
    }
  }

  @Override
  public void maxPool(float[] x, int n, ConvGeometry g, float[] y, int[] argmax) {
    int o = 0;
    for (int s = 0; s < n; s++) {
      for (int oh = 0; oh < g.outHeight(); oh++) {
        for (int ow = 0; ow < g.outWidth(); ow++) {
          for (int ch = 0; ch < g.channels(); ch++, o++) {
            float best = Float.NEGATIVE_INFINITY;
            int where = -1;
            for (int kh = 0; kh < g.kernelHeight(); kh++) {
              for (int kw = 0; kw < g.kernelWidth(); kw++) {
                int ih = oh * g.stride() - g.padTop() + kh;
                int iw = ow * g.stride() - g.padLeft() + kw;
                if (ih >= 0 && ih < g.height() && iw >= 0 && iw < g.width()) {
                  int xi = s * g.inputSize() + (ih * g.width() + iw) * g.channels() + ch;
                  if (where < 0 || x[xi] > best) {
                    best = x[xi];
                    where = xi;
                  }
                }
              }
            }
            y[o] = best;
            argmax[o] = where;
          }
        }
      }
    }
  }

  @Override
  public int threads() {
    return pool == null ? 1 : pool.threads();
  }

  @Override
  public void close() {
    if (pool != null) {
      pool.close();
    }
  }

  @Override
  public void maxPoolBackward(float[] dy, int[] argmax, int n, ConvGeometry g, float[] x, float[] dx) {
    java.util.Arrays.fill(dx, 0, n * g.inputSize(), 0f);
    int size = n * g.outputPixels() * g.channels();
    for (int o = 0; o < size; o++) {
      if (x == null || x[argmax[o]] > 0f) {
        dx[argmax[o]] += dy[o];
      }
    }
  }

  @Override
  public void relu(float[] x, float[] y, int len) {
    for (int i = 0; i < len; i++) {
      y[i] = Math.max(x[i], 0f);
    }
  }

  @Override
  public void reluBackward(float[] y, float[] dy, float[] dx, int len) {
    for (int i = 0; i < len; i++) {
      dx[i] = y[i] > 0f ? dy[i] : 0f;
    }
  }

  @Override
  public void fillRows(float[] params, int off, float[] y, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
      System.arraycopy(params, off, y, r * cols, cols);
    }
  }

  @Override
  public void sumRows(float[] dy, int rows, int cols, float[] grads, int off) {
    for (int j = 0; j < cols; j++) {
      float s = 0;
      for (int r = 0; r < rows; r++) {
        s += dy[r * cols + j];
      }
      grads[off + j] = s;
    }
  }
}
