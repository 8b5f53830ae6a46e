package dev.convspark.tensor.kernels;

import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The CPU kernels used for training: a packed, register-blocked matrix multiply on the Java Vector
 * API (the widest vectors the CPU has), and patch unfolding and pooling spread over samples. The
 * maths is that of {@link ReferenceKernels}; only the order of the additions differs.
 *
 * <p>The multiply follows the usual GotoBLAS plan: a {@code KC}-deep slice of B is packed once into
 * panels {@code NR} columns wide, each thread packs {@code MR}-row panels of its block of A, and a
 * micro-kernel keeps an {@code MR x NR} tile of C in registers while it walks the shared depth.
 */
public final class FastKernels implements Kernels {

  private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
  private static final int L = S.length();
  /** Columns of a C tile: two vectors. */
  static final int NR = 2 * L;
  /** Rows of a C tile: 6 x 2 accumulators leave registers for B and the broadcast even with AVX2. */
  static final int MR = 6;
  private static final int KC = 256;
  private static final int MC = 16 * MR;
  private static final int NC = 2048;
  /** Below this many multiply-adds the packing costs more than it saves. */
  private static final long SMALL = 16 * 1024;

  private final ThreadPool pool;
  private final ThreadLocal<float[]> aPack = ThreadLocal.withInitial(() -> new float[MC * KC]);
  private final ThreadLocal<float[]> tile = ThreadLocal.withInitial(() -> new float[MR * NR]);
  private float[] bPack = new float[0];
  private final ReferenceKernels reference = new ReferenceKernels();

  /** @param pool the threads to use; the kernels do not close it */
  public FastKernels(ThreadPool pool) {
    this.pool = pool;
  }

  @Override
  public int threads() {
    return pool.threads();
  }

  /** The vector width in floats this JVM uses on this CPU. */
  public static int vectorLength() {
    return L;
  }

  @Override
  public synchronized void gemm(boolean transA, boolean transB, int m, int n, int k,
                                float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                                float beta, float[] c, int cOff, int ldc) {
    if (m == 0 || n == 0) {
      return;
    }
    if (k == 0 || (long) m * n * k < SMALL) {
      reference.gemm(transA, transB, m, n, k, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
      return;
    }
    for (int jc = 0; jc < n; jc += NC) {
      int nc = Math.min(NC, n - jc);
      int panels = (nc + NR - 1) / NR;
      for (int pc = 0; pc < k; pc += KC) {
        int kc = Math.min(KC, k - pc);
        if (bPack.length < panels * NR * kc) {
          bPack = new float[panels * NR * KC];
        }
        float[] bp = bPack;
        packB(transB, b, bOff, ldb, pc, kc, jc, nc, bp);
        float betaHere = pc == 0 ? beta : 1f;
        int mBlocks = (m + MC - 1) / MC;
        // Enough tasks for every thread: split the panels when there are few row blocks.
        int chunks = Math.max(1, Math.min(panels, (2 * pool.threads() + mBlocks - 1) / mBlocks));
        int perChunk = (panels + chunks - 1) / chunks;
        final int jc0 = jc;
        final int pc0 = pc;
        pool.parallelFor(mBlocks * chunks, t -> {
          int ic = (t / chunks) * MC;
          int mc = Math.min(MC, m - ic);
          int q0 = (t % chunks) * perChunk;
          int q1 = Math.min(panels, q0 + perChunk);
          if (q0 >= q1) {
            return;
          }
          float[] ap = aPack.get();
          packA(transA, a, aOff, lda, ic, mc, pc0, kc, ap);
          float[] tmp = tile.get();
          for (int q = q0; q < q1; q++) {
            int j = jc0 + q * NR;
            int nr = Math.min(NR, jc0 + nc - j);
            for (int ir = 0; ir < mc; ir += MR) {
              int mr = Math.min(MR, mc - ir);
              micro(kc, ap, ir * kc, bp, q * NR * kc, c, cOff + (ic + ir) * ldc + j, ldc, betaHere, mr, nr, tmp);
            }
          }
        });
      }
    }
  }

  /** Packs rows [ic, ic+mc) x depth [pc, pc+kc) of op(A) into MR-row panels, depth-major inside. */
  private static void packA(boolean transA, float[] a, int aOff, int lda, int ic, int mc, int pc, int kc, float[] ap) {
    for (int ir = 0; ir < mc; ir += MR) {
      int mr = Math.min(MR, mc - ir);
      int base = ir * kc;
      for (int p = 0; p < kc; p++) {
        int o = base + p * MR;
        for (int i = 0; i < mr; i++) {
          int row = ic + ir + i;
          ap[o + i] = transA ? a[aOff + (pc + p) * lda + row] : a[aOff + row * lda + pc + p];
        }
        for (int i = mr; i < MR; i++) {
          ap[o + i] = 0f;
        }
      }
    }
  }

  /** Packs depth [pc, pc+kc) x columns [jc, jc+nc) of op(B) into NR-column panels. */
  private void packB(boolean transB, float[] b, int bOff, int ldb, int pc, int kc, int jc, int nc, float[] bp) {
    int panels = (nc + NR - 1) / NR;
    pool.parallelFor(panels, q -> {
      int j0 = jc + q * NR;
      int nr = Math.min(NR, jc + nc - j0);
      int base = q * NR * kc;
      for (int p = 0; p < kc; p++) {
        int o = base + p * NR;
        if (!transB && nr == NR) {
          System.arraycopy(b, bOff + (pc + p) * ldb + j0, bp, o, NR);
          continue;
        }
        for (int j = 0; j < nr; j++) {
          bp[o + j] = transB ? b[bOff + (j0 + j) * ldb + pc + p] : b[bOff + (pc + p) * ldb + j0 + j];
        }
        for (int j = nr; j < NR; j++) {
          bp[o + j] = 0f;
        }
      }
    });
  }

  /** One MR x NR tile: C = acc + beta * C, with acc the product of an A panel and a B panel. */
  private static void micro(int kc, float[] ap, int aOff, float[] bp, int bOff, float[] c, int cOff, int ldc,
                            float beta, int mr, int nr, float[] tmp) {
    FloatVector c00 = FloatVector.zero(S);
    FloatVector c01 = c00;
    FloatVector c10 = c00;
    FloatVector c11 = c00;
    FloatVector c20 = c00;
    FloatVector c21 = c00;
    FloatVector c30 = c00;
    FloatVector c31 = c00;
    FloatVector c40 = c00;
    FloatVector c41 = c00;
    FloatVector c50 = c00;
    FloatVector c51 = c00;
    for (int p = 0; p < kc; p++) {
      int bo = bOff + p * NR;
      FloatVector b0 = FloatVector.fromArray(S, bp, bo);
      FloatVector b1 = FloatVector.fromArray(S, bp, bo + L);
      int ao = aOff + p * MR;
      FloatVector x = FloatVector.broadcast(S, ap[ao]);
      c00 = b0.fma(x, c00);
      c01 = b1.fma(x, c01);
      x = FloatVector.broadcast(S, ap[ao + 1]);
      c10 = b0.fma(x, c10);
      c11 = b1.fma(x, c11);
      x = FloatVector.broadcast(S, ap[ao + 2]);
      c20 = b0.fma(x, c20);
      c21 = b1.fma(x, c21);
      x = FloatVector.broadcast(S, ap[ao + 3]);
      c30 = b0.fma(x, c30);
      c31 = b1.fma(x, c31);
      x = FloatVector.broadcast(S, ap[ao + 4]);
      c40 = b0.fma(x, c40);
      c41 = b1.fma(x, c41);
      x = FloatVector.broadcast(S, ap[ao + 5]);
      c50 = b0.fma(x, c50);
      c51 = b1.fma(x, c51);
    }
    if (mr == MR && nr == NR) {
      store(c, cOff, beta, c00, c01);
      store(c, cOff + ldc, beta, c10, c11);
      store(c, cOff + 2 * ldc, beta, c20, c21);
      store(c, cOff + 3 * ldc, beta, c30, c31);
      store(c, cOff + 4 * ldc, beta, c40, c41);
      store(c, cOff + 5 * ldc, beta, c50, c51);
      return;
    }
    c00.intoArray(tmp, 0);
    c01.intoArray(tmp, L);
    c10.intoArray(tmp, NR);
    c11.intoArray(tmp, NR + L);
    c20.intoArray(tmp, 2 * NR);
    c21.intoArray(tmp, 2 * NR + L);
    c30.intoArray(tmp, 3 * NR);
    c31.intoArray(tmp, 3 * NR + L);
    c40.intoArray(tmp, 4 * NR);
    c41.intoArray(tmp, 4 * NR + L);
    c50.intoArray(tmp, 5 * NR);
    c51.intoArray(tmp, 5 * NR + L);
    for (int i = 0; i < mr; i++) {
      for (int j = 0; j < nr; j++) {
        int ci = cOff + i * ldc + j;
        c[ci] = beta == 0 ? tmp[i * NR + j] : tmp[i * NR + j] + beta * c[ci];
      }
    }
  }

  private static void store(float[] c, int off, float beta, FloatVector v0, FloatVector v1) {
    if (beta != 0) {
      v0 = FloatVector.fromArray(S, c, off).mul(beta).add(v0);
      v1 = FloatVector.fromArray(S, c, off + L).mul(beta).add(v1);
    }
    v0.intoArray(c, off);
    v1.intoArray(c, off + L);
  }

  @Override
  public void im2col(float[] x, int n, ConvGeometry g, float[] col) {
    int rowLen = g.patchSize();
    int ch = g.channels();
    int spanLen = g.kernelWidth() * ch;
    pool.parallelFor(n, s -> {
      int xBase = s * g.inputSize();
      int q = s * g.outputPixels() * rowLen;
      for (int oh = 0; oh < g.outHeight(); oh++) {
        for (int ow = 0; ow < g.outWidth(); ow++, q += rowLen) {
          int iw0 = ow * g.stride() - g.padLeft();
          boolean wholeRow = iw0 >= 0 && iw0 + g.kernelWidth() <= g.width();
          for (int kh = 0; kh < g.kernelHeight(); kh++) {
            int ih = oh * g.stride() - g.padTop() + kh;
            int o = q + kh * spanLen;
            if (ih < 0 || ih >= g.height()) {
              Arrays.fill(col, o, o + spanLen, 0f);
            } else if (wholeRow) {
              // The kernel row covers kw * channels consecutive floats of the NHWC input.
              System.arraycopy(x, xBase + (ih * g.width() + iw0) * ch, col, o, spanLen);
            } else {
              for (int kw = 0; kw < g.kernelWidth(); kw++) {
                int iw = iw0 + kw;
                if (iw < 0 || iw >= g.width()) {
                  Arrays.fill(col, o + kw * ch, o + (kw + 1) * ch, 0f);
                } else {
                  System.arraycopy(x, xBase + (ih * g.width() + iw) * ch, col, o + kw * ch, ch);
                }
              }
            }
          }
        }
      }
    });
  }

  @Override
  public void col2im(float[] col, int n, ConvGeometry g, float[] dx) {
    int rowLen = g.patchSize();
    int ch = g.channels();
    pool.parallelFor(n, s -> {
      int xBase = s * g.inputSize();
      Arrays.fill(dx, xBase, xBase + g.inputSize(), 0f);
      int q = s * g.outputPixels() * rowLen;
      for (int oh = 0; oh < g.outHeight(); oh++) {
        for (int ow = 0; ow < g.outWidth(); ow++, q += rowLen) {
          for (int kh = 0; kh < g.kernelHeight(); kh++) {
            int ih = oh * g.stride() - g.padTop() + kh;
            if (ih < 0 || ih >= g.height()) {
              continue;
            }
            for (int kw = 0; kw < g.kernelWidth(); kw++) {
              int iw = ow * g.stride() - g.padLeft() + kw;
              if (iw < 0 || iw >= g.width()) {
                continue;
              }
              int d = xBase + (ih * g.width() + iw) * ch;
              int o = q + (kh * g.kernelWidth() + kw) * ch;
              addInto(col, o, dx, d, ch);
            }
          }
        }
      }
    });
  }

  private static void addInto(float[] src, int so, float[] dst, int d, int len) {
    int i = 0;
    for (int bound = S.loopBound(len); i < bound; i += L) {
      FloatVector.fromArray(S, dst, d + i).add(FloatVector.fromArray(S, src, so + i)).intoArray(dst, d + i);
    }
    for (; i < len; i++) {
      dst[d + i] += src[so + i];
    }
  }

  @Override
  public void maxPool(float[] x, int n, ConvGeometry g, float[] y, int[] argmax) {
    int ch = g.channels();
    pool.parallelFor(n, s -> {
      int xBase = s * g.inputSize();
      int o = s * g.outputPixels() * ch;
      for (int oh = 0; oh < g.outHeight(); oh++) {
        for (int ow = 0; ow < g.outWidth(); ow++, o += ch) {
          Arrays.fill(y, o, o + ch, Float.NEGATIVE_INFINITY);
          Arrays.fill(argmax, o, o + ch, -1);
          for (int kh = 0; kh < g.kernelHeight(); kh++) {
            int ih = oh * g.stride() - g.padTop() + kh;
            if (ih < 0 || ih >= g.height()) {
              continue;
            }
            for (int kw = 0; kw < g.kernelWidth(); kw++) {
              int iw = ow * g.stride() - g.padLeft() + kw;
              if (iw < 0 || iw >= g.width()) {
                continue;
              }
              int xi = xBase + (ih * g.width() + iw) * ch;
              for (int c = 0; c < ch; c++) {
                if (argmax[o + c] < 0 || x[xi + c] > y[o + c]) {
                  y[o + c] = x[xi + c];
                  argmax[o + c] = xi + c;
                }
              }
            }
          }
        }
      }
    });
  }
}
