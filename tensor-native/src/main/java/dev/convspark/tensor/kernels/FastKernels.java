package dev.convspark.tensor.kernels;

import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
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
  /** Depth of a slice: 128 rows of an in-place B panel (two lines each) fit in L1 even at awkward strides. */
  private static final int KC = 128;
  private static final int MC = 16 * MR;
  private static final int NC = 2048;
  /** Below this many multiply-adds the packing costs more than it saves. */
  private static final long SMALL = 16 * 1024;
  /** Marks a task that packs each panel of B itself (see {@link #block}). */
  private static final float[] PACK_EACH = new float[0];

  private final ThreadPool pool;
  private final ThreadLocal<float[]> aPack = ThreadLocal.withInitial(() -> new float[MC * KC]);
  private final ThreadLocal<float[]> tile = ThreadLocal.withInitial(() -> new float[MR * NR]);
  private final ThreadLocal<float[]> edgePack = ThreadLocal.withInitial(() -> new float[KC * NR]);
  private final ThreadLocal<float[]> narrowB = ThreadLocal.withInitial(() -> new float[0]);
  private float[] bPack = new float[0];
  private final ReferenceKernels reference = new ReferenceKernels();

  /** @param pool the threads to use; the kernels do not close it */
  public FastKernels(ThreadPool pool) {
    WarmUp.done();
    this.pool = pool;
  }

  /**
   * Runs every vectorised kernel once on tiny inputs, on one thread, the first time kernels are
   * made in a JVM. Without it, about one JVM in three (15 of 48 here, Java 17) trained 7 to 10
   * times slower for its whole life: C2 had compiled the multiply's micro-kernel with some Vector
   * API calls left as calls on boxed vectors ("missing constant" under -XX:+PrintIntrinsics), and
   * nothing made it recompile. With the warm-up: 0 of 24. The likely cause is the first hot loops
   * being compiled while the kernels' threads were still initialising the vector classes; the
   * remedy is measured, the cause is not proven. Warming Adam's update the same way made it worse
   * (10 of 12 slow), so this touches the kernels only.
   */
  private static final class WarmUp {
    static {
      warmUp();
    }

    static void done() {
    }

    private static float[] values(int n) {
      float[] a = new float[n];
      for (int i = 0; i < n; i++) {
        a[i] = (i % 13 - 6) * 0.125f;
      }
      return a;
    }

    private static void warmUp() {
      try (ThreadPool one = new ThreadPool(1)) {
        FastKernels k = new FastKernels(one);
        float[] a = values(64 * 96);
        float[] b = values(96 * 64);
        float[] c = new float[48 * 512];
        for (boolean ta : new boolean[] {false, true}) {
          for (boolean tb : new boolean[] {false, true}) {
            k.gemm(ta, tb, 50, 64, 96, a, 0, ta ? 50 : 96, b, 0, tb ? 96 : 64, 0f, c, 0, 64);
            k.gemm(ta, tb, 50, 64, 96, a, 0, ta ? 50 : 96, b, 0, tb ? 96 : 64, 1f, c, 0, 64);
          }
        }
        k.gemm(false, false, 64, 10, 96, a, 0, 96, b, 0, 10, 0f, c, 0, 10);
        k.gemm(true, false, 96, 10, 64, a, 0, 96, b, 0, 10, 0f, c, 0, 10);
        k.gemm(false, false, 48, 512, 8, a, 0, 8, b, 0, 512, 0f, c, 0, 512);
        for (int channels : new int[] {1, 3}) {
          ConvGeometry g = ConvGeometry.of(7, 6, channels, 3, 3, 1, dev.convspark.tensor.Padding.SAME);
          int filters = 2 * NR;
          float[] x = values(2 * g.inputSize());
          float[] w = values(g.patchSize() * filters);
          float[] y = new float[2 * g.outputPixels() * filters];
          float[] grads = new float[w.length];
          ConvBuffers buffers = new ConvBuffers();
          k.convForward(x, 2, g, w, 0, filters, y, true, buffers);
          k.convBackward(x, y, 2, g, w, 0, filters, grads, null, buffers);
          k.convBackward(x, y, 2, g, w, 0, filters, grads, new float[x.length], buffers);
          k.sumRows(y, 2 * g.outputPixels(), filters, grads, 0);
          k.fillRows(w, 0, y, 2 * g.outputPixels(), filters);
        }
        ConvGeometry p = ConvGeometry.of(4, 4, 2 * L, 2, 2, 2, dev.convspark.tensor.Padding.SAME);
        float[] x = values(p.inputSize());
        float[] y = new float[p.outputPixels() * p.channels()];
        int[] argmax = new int[y.length];
        k.maxPool(x, 1, p, y, argmax);
        k.maxPoolBackward(y, argmax, 1, p, null, x.clone());
        k.maxPoolBackward(y, argmax, 1, p, x, new float[x.length]);
        k.relu(x, x.clone(), x.length);
        k.reluBackward(x, x, x.clone(), x.length);
      }
    }
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
    if (!transA && n <= L && k >= 4 * L) {
      narrow(transB, m, n, k, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
      return;
    }
    if (transA && !transB && n <= L && (long) m * n * k <= 1 << 22) {
      narrowOuter(m, n, k, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
      return;
    }
    // A row-major operand is read in place (each of a tile's rows is a sequential stream); a
    // transposed one is packed. Likewise B. Only partial edge tiles of an in-place operand are
    // copied, zero-padded, into a small buffer.
    final boolean directA = !transA;
    // Rows of B a multiple of 2 KB apart all fall into a few cache sets, so a panel read in place
    // evicts itself: such a B is packed even when it is not transposed, unless A has so few rows
    // that each element of B is read only a few times (measured: packing then costs more).
    final boolean directB = !transB && (ldb % 512 != 0 || m < 8 * MR);
    int mBlocks = (m + MC - 1) / MC;
    int tiles = mBlocks * ((n + NR - 1) / NR);
    if (directB && tiles < pool.threads() && k >= 2 * KC * pool.threads() && (long) m * n <= 1 << 16) {
      splitDepth(directA, m, n, k, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
      return;
    }
    for (int jc = 0; jc < n; jc += NC) {
      final int jc0 = jc;
      final int nc = Math.min(NC, n - jc);
      final int panels = (nc + NR - 1) / NR;
      // Enough tasks for every thread: split the panels when there are few row blocks.
      final int chunks = Math.max(1, Math.min(panels, (2 * pool.threads() + mBlocks - 1) / mBlocks));
      final int perChunk = (panels + chunks - 1) / chunks;
      if (!directB && mBlocks == 1) {
        // One block of rows (a batch through a dense layer): each panel of B is used by that one
        // block only, so each task packs its panels one at a time into its own small buffer,
        // instead of the whole slice of B being packed and then shared, once per depth slice.
        pool.parallelFor(chunks, t -> {
          for (int pc = 0; pc < k; pc += KC) {
            block(directA, transB, a, aOff, lda, b, bOff, ldb, PACK_EACH, c, cOff, ldc, pc == 0 ? beta : 1f,
                m, 0, t * perChunk, Math.min(panels, (t + 1) * perChunk), jc0, nc, pc, Math.min(KC, k - pc));
          }
        });
        continue;
      }
      if (directB) {
        // Nothing is shared between tasks, so each one walks the whole depth for its own part of C:
        // one parallel loop per multiply, whatever k is.
        pool.parallelFor(mBlocks * chunks, t -> {
          for (int pc = 0; pc < k; pc += KC) {
            block(directA, false, a, aOff, lda, b, bOff, ldb, null, c, cOff, ldc, pc == 0 ? beta : 1f,
                m, t / chunks * MC, t % chunks * perChunk, Math.min(panels, (t % chunks + 1) * perChunk), jc0, nc,
                pc, Math.min(KC, k - pc));
          }
        });
        continue;
      }
      for (int pc = 0; pc < k; pc += KC) {
        final int pc0 = pc;
        final int kc = Math.min(KC, k - pc);
        if (bPack.length < panels * NR * kc) {
          bPack = new float[panels * NR * KC];
        }
        final float[] bp = bPack;
        packB(transB, b, bOff, ldb, pc, kc, jc, nc, bp);
        final float betaHere = pc == 0 ? beta : 1f;
        pool.parallelFor(mBlocks * chunks, t -> block(directA, false, a, aOff, lda, b, bOff, ldb, bp, c, cOff, ldc, betaHere,
            m, t / chunks * MC, t % chunks * perChunk, Math.min(panels, (t % chunks + 1) * perChunk), jc0, nc, pc0, kc));
      }
    }
  }

  /**
   * For a narrow C (a classifier's logits: n of at most one vector): B is transposed into a small
   * buffer once, then every element of C is a vectorised dot product of two contiguous rows.
   */
  private void narrow(boolean transB, int m, int n, int k, float[] a, int aOff, int lda,
                      float[] b, int bOff, int ldb, float beta, float[] c, int cOff, int ldc) {
    float[] bt = narrowB.get();
    if (bt.length < n * k) {
      bt = new float[n * k];
      narrowB.set(bt);
    }
    final float[] btFinal = bt;
    for (int p = 0; p < k; p++) {
      for (int j = 0; j < n; j++) {
        bt[j * k + p] = transB ? b[bOff + j * ldb + p] : b[bOff + p * ldb + j];
      }
    }
    int parts = (long) m * n * k < 1 << 20 ? 1 : pool.threads();
    int per = (m + parts - 1) / parts;
    pool.parallelFor(parts, t -> {
      for (int i = t * per, end = Math.min(m, i + per); i < end; i++) {
        int ai = aOff + i * lda;
        int j = 0;
        int bound = S.loopBound(k);
        // Four columns at a time: four independent chains of multiply-adds hide the latency that
        // one dot product alone waits on at every step. Each element's sum keeps its order.
        for (; j + 4 <= n; j += 4) {
          int b0 = j * k;
          FloatVector acc0 = FloatVector.zero(S);
          FloatVector acc1 = acc0;
          FloatVector acc2 = acc0;
          FloatVector acc3 = acc0;
          int p = 0;
          for (; p < bound; p += L) {
            FloatVector av = FloatVector.fromArray(S, a, ai + p);
            acc0 = av.fma(FloatVector.fromArray(S, btFinal, b0 + p), acc0);
            acc1 = av.fma(FloatVector.fromArray(S, btFinal, b0 + k + p), acc1);
            acc2 = av.fma(FloatVector.fromArray(S, btFinal, b0 + 2 * k + p), acc2);
            acc3 = av.fma(FloatVector.fromArray(S, btFinal, b0 + 3 * k + p), acc3);
          }
          float s0 = acc0.reduceLanes(VectorOperators.ADD);
          float s1 = acc1.reduceLanes(VectorOperators.ADD);
          float s2 = acc2.reduceLanes(VectorOperators.ADD);
          float s3 = acc3.reduceLanes(VectorOperators.ADD);
          for (; p < k; p++) {
            float x = a[ai + p];
            s0 += x * btFinal[b0 + p];
            s1 += x * btFinal[b0 + k + p];
            s2 += x * btFinal[b0 + 2 * k + p];
            s3 += x * btFinal[b0 + 3 * k + p];
          }
          int ci = cOff + i * ldc + j;
          c[ci] = beta == 0 ? s0 : s0 + beta * c[ci];
          c[ci + 1] = beta == 0 ? s1 : s1 + beta * c[ci + 1];
          c[ci + 2] = beta == 0 ? s2 : s2 + beta * c[ci + 2];
          c[ci + 3] = beta == 0 ? s3 : s3 + beta * c[ci + 3];
        }
        for (; j < n; j++) {
          int bj = j * k;
          FloatVector acc = FloatVector.zero(S);
          int p = 0;
          for (; p < bound; p += L) {
            acc = FloatVector.fromArray(S, a, ai + p).fma(FloatVector.fromArray(S, btFinal, bj + p), acc);
          }
          float sum = acc.reduceLanes(VectorOperators.ADD);
          for (; p < k; p++) {
            sum += a[ai + p] * btFinal[bj + p];
          }
          int ci = cOff + i * ldc + j;
          c[ci] = beta == 0 ? sum : sum + beta * c[ci];
        }
      }
    });
  }

  /**
   * For a narrow C that is a sum of outer products, {@code C = A^T B} with B at most one vector
   * wide (a classifier's weight gradient): each row of C gathers {@code A[p][i] * B[p][0..n)} over
   * p with one masked vector multiply-add, no packing. Small by construction, so one thread.
   */
  private void narrowOuter(int m, int n, int k, float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                           float beta, float[] c, int cOff, int ldc) {
    // B's rows padded with zeros to one vector, so every load is a plain one.
    float[] padded = narrowB.get();
    if (padded.length < k * L) {
      padded = new float[k * L];
      narrowB.set(padded);
    }
    for (int p = 0; p < k; p++) {
      System.arraycopy(b, bOff + p * ldb, padded, p * L, n);
      Arrays.fill(padded, p * L + n, (p + 1) * L, 0f);
    }
    float[] row = tile.get();
    int i = 0;
    // Four rows at a time: four independent chains of multiply-adds hide the instruction's latency
    // (one row's chain alone waits on itself at every step). Each row's sum keeps its order.
    for (; i + 4 <= m; i += 4) {
      FloatVector acc0 = FloatVector.zero(S);
      FloatVector acc1 = acc0;
      FloatVector acc2 = acc0;
      FloatVector acc3 = acc0;
      for (int p = 0; p < k; p++) {
        FloatVector bv = FloatVector.fromArray(S, padded, p * L);
        int ai = aOff + p * lda + i;
        acc0 = bv.fma(FloatVector.broadcast(S, a[ai]), acc0);
        acc1 = bv.fma(FloatVector.broadcast(S, a[ai + 1]), acc1);
        acc2 = bv.fma(FloatVector.broadcast(S, a[ai + 2]), acc2);
        acc3 = bv.fma(FloatVector.broadcast(S, a[ai + 3]), acc3);
      }
      acc0.intoArray(row, 0);
      acc1.intoArray(row, L);
      acc2.intoArray(row, 2 * L);
      acc3.intoArray(row, 3 * L);
      for (int r = 0; r < 4; r++) {
        int ci = cOff + (i + r) * ldc;
        for (int j = 0; j < n; j++) {
          c[ci + j] = beta == 0 ? row[r * L + j] : row[r * L + j] + beta * c[ci + j];
        }
      }
    }
    for (; i < m; i++) {
      FloatVector acc = FloatVector.zero(S);
      for (int p = 0; p < k; p++) {
        acc = FloatVector.fromArray(S, padded, p * L).fma(FloatVector.broadcast(S, a[aOff + p * lda + i]), acc);
      }
      acc.intoArray(row, 0);
      int ci = cOff + i * ldc;
      for (int j = 0; j < n; j++) {
        c[ci + j] = beta == 0 ? row[j] : row[j] + beta * c[ci + j];
      }
    }
  }

  /**
   * For a small C with a long depth (a weight gradient summed over many pixels), where C has too
   * few tiles to share out: each thread multiplies its own slice of the depth into a private C,
   * and the slices are added up in a fixed order, so results do not depend on timing.
   */
  private void splitDepth(boolean directA, int m, int n, int k, float[] a, int aOff, int lda,
                          float[] b, int bOff, int ldb, float beta, float[] c, int cOff, int ldc) {
    int parts = pool.threads();
    int per = ((k + parts - 1) / parts + KC - 1) / KC * KC;
    float[][] partial = new float[parts][m * n];
    int mBlocks = (m + MC - 1) / MC;
    int panels = (n + NR - 1) / NR;
    pool.parallelFor(parts, t -> {
      int k0 = t * per;
      int k1 = Math.min(k, k0 + per);
      for (int pc = k0; pc < k1; pc += KC) {
        for (int ib = 0; ib < mBlocks; ib++) {
          block(directA, false, a, aOff, lda, b, bOff, ldb, null, partial[t], 0, n, pc == k0 ? 0f : 1f,
              m, ib * MC, 0, panels, 0, n, pc, Math.min(KC, k1 - pc));
        }
      }
      if (k0 >= k1) {
        Arrays.fill(partial[t], 0f);
      }
    });
    for (int i = 0; i < m; i++) {
      for (int j = 0; j < n; j++) {
        float sum = 0;
        for (int t = 0; t < parts; t++) {
          sum += partial[t][i * n + j];
        }
        int ci = cOff + i * ldc + j;
        c[ci] = beta == 0 ? sum : sum + beta * c[ci];
      }
    }
  }

  /**
   * One task: rows [ic, ic+MC) of C, column panels [q0, q1) of the column block at jc, for the
   * depth slice [pc, pc+kc). {@code bPacked} is the packed B slice, null to read B (not
   * transposed) in place, or {@link #PACK_EACH} to pack op(B) one panel at a time here.
   */
  private void block(boolean directA, boolean transB, float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                     float[] bPacked,
                     float[] c, int cOff, int ldc, float beta, int m, int ic, int q0, int q1, int jc, int nc,
                     int pc, int kc) {
    if (q0 >= q1) {
      return;
    }
    int mc = Math.min(MC, m - ic);
    float[] ap = aPack.get();
    float[] edgeB = edgePack.get();
    float[] tmp = tile.get();
    if (!directA) {
      packA(true, a, aOff, lda, ic, mc, pc, kc, ap);
    } else if (mc % MR != 0) {
      int last = mc - mc % MR;
      packA(false, a, aOff, lda, ic + last, mc - last, pc, kc, ap);
    }
    for (int q = q0; q < q1; q++) {
      int j = jc + q * NR;
      int nr = Math.min(NR, jc + nc - j);
      float[] bArr;
      int bBase;
      int bRs;
      if (bPacked == PACK_EACH) {
        packBPanel(transB, b, bOff, ldb, pc, kc, j, nr, edgeB, 0);
        bArr = edgeB;
        bBase = 0;
        bRs = NR;
      } else if (bPacked != null) {
        bArr = bPacked;
        bBase = q * NR * kc;
        bRs = NR;
      } else if (nr == NR) {
        bArr = b;
        bBase = bOff + pc * ldb + j;
        bRs = ldb;
      } else {
        packBPanel(false, b, bOff, ldb, pc, kc, j, nr, edgeB, 0);
        bArr = edgeB;
        bBase = 0;
        bRs = NR;
      }
      for (int ir = 0; ir < mc; ir += MR) {
        int mr = Math.min(MR, mc - ir);
        int cAt = cOff + (ic + ir) * ldc + j;
        if (!directA) {
          micro(kc, ap, ir * kc, 1, MR, bArr, bBase, bRs, c, cAt, ldc, beta, mr, nr, tmp);
        } else if (mr == MR) {
          micro(kc, a, aOff + (ic + ir) * lda + pc, lda, 1, bArr, bBase, bRs, c, cAt, ldc, beta, mr, nr, tmp);
        } else {
          micro(kc, ap, 0, 1, MR, bArr, bBase, bRs, c, cAt, ldc, beta, mr, nr, tmp);
        }
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
      packBPanel(transB, b, bOff, ldb, pc, kc, j0, Math.min(NR, jc + nc - j0), bp, q * NR * kc);
    });
  }

  /** Packs one NR-column panel of op(B), columns [j0, j0+nr), zero-padded to NR, at {@code base}. */
  private static void packBPanel(boolean transB, float[] b, int bOff, int ldb, int pc, int kc, int j0, int nr,
                                 float[] bp, int base) {
    if (!transB && nr == NR) {
      for (int p = 0, from = bOff + pc * ldb + j0, o = base; p < kc; p++, from += ldb, o += NR) {
        FloatVector.fromArray(S, b, from).intoArray(bp, o);
        FloatVector.fromArray(S, b, from + L).intoArray(bp, o + L);
      }
      return;
    }
    for (int p = 0; p < kc; p++) {
      int o = base + p * NR;
      for (int j = 0; j < nr; j++) {
        bp[o + j] = transB ? b[bOff + (j0 + j) * ldb + pc + p] : b[bOff + (pc + p) * ldb + j0 + j];
      }
      for (int j = nr; j < NR; j++) {
        bp[o + j] = 0f;
      }
    }
  }

  /**
   * One MR x NR tile: C = acc + beta * C, where acc sums over depth p the outer product of A's
   * column p (element i at {@code ap[aOff + i * aRs + p * aCs]}) and B's row p (NR floats at
   * {@code bp[bOff + p * bRs]}). Packed operands have strides (1, MR) and NR; in-place ones
   * (lda, 1) and ldb.
   */
  private static void micro(int kc, float[] ap, int aOff, int aRs, int aCs, float[] bp, int bOff, int bRs,
                            float[] c, int cOff, int ldc, float beta, int mr, int nr, float[] tmp) {
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
      int bo = bOff + p * bRs;
      FloatVector b0 = FloatVector.fromArray(S, bp, bo);
      FloatVector b1 = FloatVector.fromArray(S, bp, bo + L);
      int ao = aOff + p * aCs;
      FloatVector x = FloatVector.broadcast(S, ap[ao]);
      c00 = b0.fma(x, c00);
      c01 = b1.fma(x, c01);
      x = FloatVector.broadcast(S, ap[ao + aRs]);
      c10 = b0.fma(x, c10);
      c11 = b1.fma(x, c11);
      x = FloatVector.broadcast(S, ap[ao + 2 * aRs]);
      c20 = b0.fma(x, c20);
      c21 = b1.fma(x, c21);
      x = FloatVector.broadcast(S, ap[ao + 3 * aRs]);
      c30 = b0.fma(x, c30);
      c31 = b1.fma(x, c31);
      x = FloatVector.broadcast(S, ap[ao + 4 * aRs]);
      c40 = b0.fma(x, c40);
      c41 = b1.fma(x, c41);
      x = FloatVector.broadcast(S, ap[ao + 5 * aRs]);
      c50 = b0.fma(x, c50);
      c51 = b1.fma(x, c51);
    }
    if (mr == MR && nr == NR) {
      // Written out row by row: a helper taking vectors would not be inlined into this large
      // method, and vectors passed to a call that is not inlined are boxed on the heap.
      if (beta != 0f) {
        c00 = c00.add(FloatVector.fromArray(S, c, cOff).mul(beta));
        c01 = c01.add(FloatVector.fromArray(S, c, cOff + L).mul(beta));
        c10 = c10.add(FloatVector.fromArray(S, c, cOff + ldc).mul(beta));
        c11 = c11.add(FloatVector.fromArray(S, c, cOff + ldc + L).mul(beta));
        c20 = c20.add(FloatVector.fromArray(S, c, cOff + 2 * ldc).mul(beta));
        c21 = c21.add(FloatVector.fromArray(S, c, cOff + 2 * ldc + L).mul(beta));
        c30 = c30.add(FloatVector.fromArray(S, c, cOff + 3 * ldc).mul(beta));
        c31 = c31.add(FloatVector.fromArray(S, c, cOff + 3 * ldc + L).mul(beta));
        c40 = c40.add(FloatVector.fromArray(S, c, cOff + 4 * ldc).mul(beta));
        c41 = c41.add(FloatVector.fromArray(S, c, cOff + 4 * ldc + L).mul(beta));
        c50 = c50.add(FloatVector.fromArray(S, c, cOff + 5 * ldc).mul(beta));
        c51 = c51.add(FloatVector.fromArray(S, c, cOff + 5 * ldc + L).mul(beta));
      }
      c00.intoArray(c, cOff);
      c01.intoArray(c, cOff + L);
      c10.intoArray(c, cOff + ldc);
      c11.intoArray(c, cOff + ldc + L);
      c20.intoArray(c, cOff + 2 * ldc);
      c21.intoArray(c, cOff + 2 * ldc + L);
      c30.intoArray(c, cOff + 3 * ldc);
      c31.intoArray(c, cOff + 3 * ldc + L);
      c40.intoArray(c, cOff + 4 * ldc);
      c41.intoArray(c, cOff + 4 * ldc + L);
      c50.intoArray(c, cOff + 5 * ldc);
      c51.intoArray(c, cOff + 5 * ldc + L);
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

  @Override
  public void im2col(float[] x, int n, ConvGeometry g, float[] col) {
    pool.parallelFor(n, s -> unfold(x, s, g, col, s * g.outputPixels() * g.patchSize()));
  }

  /** Sample {@code s}'s patches, one row per output pixel, into {@code col} from {@code q}. */
  private static void unfold(float[] x, int s, ConvGeometry g, float[] col, int q) {
    int rowLen = g.patchSize();
    int ch = g.channels();
    int spanLen = g.kernelWidth() * ch;
    int xBase = s * g.inputSize();
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
  }

  @Override
  public void col2im(float[] col, int n, ConvGeometry g, float[] dx) {
    pool.parallelFor(n, s -> fold(col, s * g.outputPixels() * g.patchSize(), s, g, dx));
  }

  /** Zeroes sample {@code s} of {@code dx}, then adds back every patch row of {@code col} from {@code q}. */
  private static void fold(float[] col, int q, int s, ConvGeometry g, float[] dx) {
    int rowLen = g.patchSize();
    int ch = g.channels();
    int xBase = s * g.inputSize();
    Arrays.fill(dx, xBase, xBase + g.inputSize(), 0f);
    for (int oh = 0; oh < g.outHeight(); oh++) {
      for (int ow = 0; ow < g.outWidth(); ow++, q += rowLen) {
        for (int kh = 0; kh < g.kernelHeight(); kh++) {
          int ih = oh * g.stride() - g.padTop() + kh;
          if (ih < 0 || ih >= g.height()) {
            continue;
          }
          int iw0 = ow * g.stride() - g.padLeft();
          int kw0 = Math.max(0, -iw0);
          int kw1 = Math.min(g.kernelWidth(), g.width() - iw0);
          if (kw0 < kw1) {
            // The kernel row's columns inside the image are consecutive floats on both sides.
            addInto(col, q + (kh * g.kernelWidth() + kw0) * ch, dx, xBase + (ih * g.width() + iw0 + kw0) * ch,
                (kw1 - kw0) * ch);
          }
        }
      }
    }
  }

  /**
   * The fused route: the samples are split over the threads, and each thread unfolds one sample's
   * patches at a time into its own buffer and multiplies them at once, while they are still in its
   * cache, instead of unfolding the whole batch into a matrix that goes to memory and back.
   */
  @Override
  public void convForward(float[] x, int n, ConvGeometry g, float[] params, int wOff, int filters, float[] y,
                          boolean relu, ConvBuffers b) {
    int pix = g.outputPixels();
    int patch = g.patchSize();
    int parts = Math.min(pool.threads(), n);
    b.reserve(parts);
    if (shiftedRoute(g, filters)) {
      Shifted sh = new Shifted(g);
      pool.parallelFor(parts, t -> {
        float[] img = b.threadCol(t, sh.imageLength);
        float[] out = b.threadDcol(t, sh.rows * filters);
        for (int s = t * n / parts, end = (t + 1) * n / parts; s < end; s++) {
          sh.pad(x, s, img);
          for (int j = 0; j < filters; j += NR) {
            for (int v = 0; v < sh.rows; v += MR) {
              // The window's rows one after another: kernel row kh multiplies the padded image
              // from row kh on by the weights of that kernel row.
              for (int kh = 0; kh < g.kernelHeight(); kh++) {
                micro(g.kernelWidth(), img, v + kh * sh.width, 1, 1, params, wOff + kh * g.kernelWidth() * filters + j,
                    filters, out, v * filters + j, filters, kh == 0 ? 0f : 1f, MR, NR, null);
              }
            }
          }
          for (int oh = 0; oh < g.outHeight(); oh++) {
            addInto(out, oh * sh.width * filters, y, (s * pix + oh * g.outWidth()) * filters, g.outWidth() * filters);
          }
          if (relu) {
            reluRange(y, y, s * pix * filters, (s + 1) * pix * filters);
          }
        }
      });
      return;
    }
    pool.parallelFor(parts, t -> {
      float[] col = b.threadCol(t, pix * patch);
      for (int s = t * n / parts, end = (t + 1) * n / parts; s < end; s++) {
        unfold(x, s, g, col, 0);
        gemmHere(true, pix, filters, patch, col, 0, patch, params, wOff, filters, 1f, y, s * pix * filters, filters);
        if (relu) {
          // While the sample's output is still in this thread's cache.
          reluRange(y, y, s * pix * filters, (s + 1) * pix * filters);
        }
      }
    });
  }

  /**
   * Whether a convolution takes the shifted-image route: one input channel (a first layer over
   * gray images), stride 1, whole register tiles of filters. Unfolding such an input costs one
   * tiny copy per kernel row and output pixel, more than the multiply; instead the image is
   * zero-padded once, and output pixels are computed over the padded width (the few extra ones
   * dropped), so that the patch values of consecutive pixels are consecutive floats of the padded
   * image: the multiply reads them in place.
   */
  private static boolean shiftedRoute(ConvGeometry g, int filters) {
    return g.channels() == 1 && g.stride() == 1 && filters % NR == 0;
  }

  /** The shapes of the shifted-image route for one geometry. */
  private static final class Shifted {
    /** The padded image's width: output pixels are computed at this width. */
    final int width;
    /** Output pixels computed, a whole number of register tiles. */
    final int rows;
    /** Floats of the padded image buffer, with room for the last tiles' reads past its end. */
    final int imageLength;
    private final ConvGeometry g;

    Shifted(ConvGeometry g) {
      this.g = g;
      this.width = g.outWidth() + g.kernelWidth() - 1;
      this.rows = (g.outHeight() * width + MR - 1) / MR * MR;
      this.imageLength = rows + (g.kernelHeight() - 1) * width + g.kernelWidth() + MR;
    }

    /** Sample {@code s} of {@code x} into {@code img}, zero-padded as the geometry says. */
    void pad(float[] x, int s, float[] img) {
      Arrays.fill(img, 0, imageLength, 0f);
      int len = Math.min(g.width(), width - g.padLeft());
      for (int ih = 0; ih < g.height() && ih + g.padTop() < g.outHeight() + g.kernelHeight() - 1; ih++) {
        System.arraycopy(x, s * g.inputSize() + ih * g.width(), img, (ih + g.padTop()) * width + g.padLeft(), len);
      }
    }

    /** Sample {@code s}'s output gradient at the padded width, the extra pixels' gradients zero. */
    void spread(float[] dy, int s, int filters, float[] out) {
      int ow = g.outWidth();
      for (int oh = 0; oh < g.outHeight(); oh++) {
        System.arraycopy(dy, (s * g.outputPixels() + oh * ow) * filters, out, oh * width * filters, ow * filters);
        Arrays.fill(out, (oh * width + ow) * filters, (oh + 1) * width * filters, 0f);
      }
    }
  }

  /**
   * The fused route backward: each thread re-unfolds its samples one at a time, adds
   * {@code dy_s^T patches_s} into its own weight-gradient sum and folds {@code dy_s W^T} straight
   * back into the sample's input gradient. The threads' sums are added in thread order.
   */
  @Override
  public void convBackward(float[] x, float[] dy, int n, ConvGeometry g, float[] params, int wOff, int filters,
                           float[] grads, float[] dx, ConvBuffers b) {
    int pix = g.outputPixels();
    int patch = g.patchSize();
    int parts = Math.min(pool.threads(), n);
    b.reserve(parts);
    float[] wT = dx == null ? null : b.wT(filters * patch);
    if (wT != null) {
      // W^T (filters x patch), so that dy_s W^T reads its B operand in place.
      Transpose.into(params, wOff, patch, filters, wT, 0);
    }
    // The weight gradient as dy^T patches (filters x patch, transposed at the end), whose columns
    // fill whole register tiles; but where a patch is narrower than one tile (a first layer's few
    // channels), as patches^T dy (patch x filters) straight away.
    boolean narrowPatch = patch < NR;
    // Without an input gradient to fold, a one-channel input takes the shifted-image route (see
    // shiftedRoute): the gradient of kernel row kh's weights is the padded image from row kh on,
    // read in place, times the output gradient spread to the padded width.
    Shifted sh = dx == null && shiftedRoute(g, filters) ? new Shifted(g) : null;
    boolean patchMajor = narrowPatch || sh != null;
    pool.parallelFor(parts, t -> {
      float[] col = b.threadCol(t, sh != null ? sh.imageLength : pix * patch);
      float[] acc = b.partial(t, filters * patch);
      float[] dcol = sh != null ? b.threadDcol(t, sh.rows * filters) : wT == null ? null : b.threadDcol(t, pix * patch);
      int first = t * n / parts;
      int end = (t + 1) * n / parts;
      if (first == end) {
        Arrays.fill(acc, 0, filters * patch, 0f);
      }
      for (int s = first; s < end; s++) {
        if (sh != null) {
          sh.pad(x, s, col);
          sh.spread(dy, s, filters, dcol);
          int kw = g.kernelWidth();
          int depth = g.outHeight() * sh.width;
          for (int kh = 0; kh < g.kernelHeight(); kh++) {
            for (int k0 = 0; k0 < kw; k0 += MR) {
              for (int j = 0; j < filters; j += NR) {
                micro(depth, col, kh * sh.width + k0, 1, 1, dcol, j, filters, acc, (kh * kw + k0) * filters + j, filters,
                    s == first ? 0f : 1f, Math.min(MR, kw - k0), NR, tile.get());
              }
            }
          }
          continue;
        }
        unfold(x, s, g, col, 0);
        if (narrowPatch) {
          gemmHere(false, patch, filters, pix, col, 0, patch, dy, s * pix * filters, filters, s == first ? 0f : 1f,
              acc, 0, filters);
        } else {
          gemmHere(false, filters, patch, pix, dy, s * pix * filters, filters, col, 0, patch, s == first ? 0f : 1f,
              acc, 0, patch);
        }
        if (dcol != null) {
          gemmHere(true, pix, patch, filters, dy, s * pix * filters, filters, wT, 0, patch, 0f, dcol, 0, patch);
          fold(dcol, 0, s, g, dx);
        }
      }
    });
    int size = filters * patch;
    float[] dwT = parts == 1 ? b.partial(0, size) : b.dwT(size);
    if (parts > 1) {
      float[] p0 = b.partial(0, size);
      System.arraycopy(p0, 0, dwT, 0, size);
      for (int t = 1; t < parts; t++) {
        addInto(b.partial(t, size), 0, dwT, 0, size);
      }
    }
    if (patchMajor) {
      System.arraycopy(dwT, 0, grads, wOff, size);
    } else {
      Transpose.into(dwT, filters, patch, grads, wOff);
    }
  }

  /**
   * {@code C = op(A) * B + beta * C} on the calling thread alone, B read in place (row-major,
   * {@code k x n}); op(A) is A itself when {@code directA}, else A stored transposed ({@code k x m}).
   */
  private void gemmHere(boolean directA, int m, int n, int k, float[] a, int aOff, int lda, float[] b, int bOff,
                        int ldb, float beta, float[] c, int cOff, int ldc) {
    int mBlocks = (m + MC - 1) / MC;
    for (int jc = 0; jc < n; jc += NC) {
      int nc = Math.min(NC, n - jc);
      int panels = (nc + NR - 1) / NR;
      for (int ib = 0; ib < mBlocks; ib++) {
        for (int pc = 0; pc < k; pc += KC) {
          block(directA, false, a, aOff, lda, b, bOff, ldb, null, c, cOff, ldc, pc == 0 ? beta : 1f,
              m, ib * MC, 0, panels, jc, nc, pc, Math.min(KC, k - pc));
        }
      }
    }
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

  private static final VectorSpecies<Integer> IS = IntVector.SPECIES_PREFERRED;

  /**
   * Vectorised over channels (NHWC keeps a pixel's channels together): each output pixel keeps a
   * running maximum and its index per lane, replaced only by a strictly larger value, in the
   * reference's window order, so ties and NaNs resolve as there.
   */
  @Override
  public void maxPool(float[] x, int n, ConvGeometry g, float[] y, int[] argmax) {
    int ch = g.channels();
    int vec = IS.length() == L ? S.loopBound(ch) : 0;
    int[] lanes = new int[L];
    for (int i = 0; i < L; i++) {
      lanes[i] = i;
    }
    IntVector iota = vec > 0 ? IntVector.fromArray(IS, lanes, 0) : null;
    int window = g.kernelHeight() * g.kernelWidth();
    pool.parallelFor(n, s -> {
      int[] at = new int[window];
      int xBase = s * g.inputSize();
      int o = s * g.outputPixels() * ch;
      for (int oh = 0; oh < g.outHeight(); oh++) {
        for (int ow = 0; ow < g.outWidth(); ow++, o += ch) {
          // The window's pixels inside the input, in the reference's order.
          int count = 0;
          for (int kh = 0; kh < g.kernelHeight(); kh++) {
            int ih = oh * g.stride() - g.padTop() + kh;
            if (ih < 0 || ih >= g.height()) {
              continue;
            }
            for (int kw = 0; kw < g.kernelWidth(); kw++) {
              int iw = ow * g.stride() - g.padLeft() + kw;
              if (iw >= 0 && iw < g.width()) {
                at[count++] = xBase + (ih * g.width() + iw) * ch;
              }
            }
          }
          if (count == 0) {
            Arrays.fill(y, o, o + ch, Float.NEGATIVE_INFINITY);
            Arrays.fill(argmax, o, o + ch, -1);
            continue;
          }
          int c = 0;
          for (; c < vec; c += L) {
            FloatVector best = FloatVector.fromArray(S, x, at[0] + c);
            IntVector arg = iota.add(at[0] + c);
            for (int w = 1; w < count; w++) {
              FloatVector v = FloatVector.fromArray(S, x, at[w] + c);
              VectorMask<Float> larger = v.compare(VectorOperators.GT, best);
              best = best.blend(v, larger);
              arg = arg.blend(iota.add(at[w] + c), larger.cast(IS));
            }
            best.intoArray(y, o + c);
            arg.intoArray(argmax, o + c);
          }
          for (; c < ch; c++) {
            float best = x[at[0] + c];
            int arg = at[0] + c;
            for (int w = 1; w < count; w++) {
              if (x[at[w] + c] > best) {
                best = x[at[w] + c];
                arg = at[w] + c;
              }
            }
            y[o + c] = best;
            argmax[o + c] = arg;
          }
        }
      }
    });
  }

  @Override
  public void maxPoolBackward(float[] dy, int[] argmax, int n, ConvGeometry g, float[] x, float[] dx) {
    int outPerSample = g.outputPixels() * g.channels();
    // Every argmax of sample s points into sample s's input, so samples never collide.
    pool.parallelFor(n, s -> {
      int from = s * g.inputSize();
      int to = from + g.inputSize();
      Arrays.fill(dx, from, to, 0f);
      for (int o = s * outPerSample, end = o + outPerSample; o < end; o++) {
        dx[argmax[o]] += dy[o];
      }
      if (x != null) {
        // The ReLU's backward pass over the sample while it is in cache; a test per gradient
        // routed instead would be mispredicted half the time.
        reluBackwardRange(x, dx, dx, from, to);
      }
    });
  }

  /** Splits [0, len) into one contiguous range per thread, in multiples of the vector length. */
  private void chunked(int len, java.util.function.BiConsumer<Integer, Integer> body) {
    int parts = len < 1 << 14 ? 1 : pool.threads();
    int step = ((len + parts - 1) / parts + L - 1) / L * L;
    pool.parallelFor(parts, t -> {
      int from = Math.min(len, t * step);
      int to = Math.min(len, from + step);
      if (from < to) {
        body.accept(from, to);
      }
    });
  }

  @Override
  public void relu(float[] x, float[] y, int len) {
    chunked(len, (from, to) -> reluRange(x, y, from, to));
  }

  /** {@code y[i] = max(x[i], 0)} for {@code i} in [from, to); {@code y} may be {@code x}. */
  private static void reluRange(float[] x, float[] y, int from, int to) {
    int i = from;
    for (int bound = from + S.loopBound(to - from); i < bound; i += L) {
      FloatVector.fromArray(S, x, i).max(0f).intoArray(y, i);
    }
    for (; i < to; i++) {
      y[i] = Math.max(x[i], 0f);
    }
  }

  @Override
  public void reluBackward(float[] y, float[] dy, float[] dx, int len) {
    chunked(len, (from, to) -> reluBackwardRange(y, dy, dx, from, to));
  }

  /** {@code dx[i] = y[i] > 0 ? dy[i] : 0} for {@code i} in [from, to); {@code dx} may be {@code dy}. */
  private static void reluBackwardRange(float[] y, float[] dy, float[] dx, int from, int to) {
    int i = from;
    for (int bound = from + S.loopBound(to - from); i < bound; i += L) {
      FloatVector v = FloatVector.fromArray(S, dy, i);
      v.blend(0f, FloatVector.fromArray(S, y, i).compare(VectorOperators.LE, 0f)).intoArray(dx, i);
    }
    for (; i < to; i++) {
      dx[i] = y[i] > 0f ? dy[i] : 0f;
    }
  }

  @Override
  public void fillRows(float[] params, int off, float[] y, int rows, int cols) {
    int parts = (long) rows * cols < 1 << 14 ? 1 : pool.threads();
    int per = (rows + parts - 1) / parts;
    pool.parallelFor(parts, t -> {
      for (int r = t * per, end = Math.min(rows, r + per); r < end; r++) {
        System.arraycopy(params, off, y, r * cols, cols);
      }
    });
  }

  @Override
  public void sumRows(float[] dy, int rows, int cols, float[] grads, int off) {
    int parts = (long) rows * cols < 1 << 14 ? 1 : pool.threads();
    int per = (rows + parts - 1) / parts;
    float[][] partial = new float[parts][cols];
    pool.parallelFor(parts, t -> {
      float[] acc = partial[t];
      int first = t * per;
      int end = Math.min(rows, first + per);
      int j = 0;
      // Two vectors of columns at a time, summed in registers over the rows, even and odd rows
      // apart so that consecutive additions do not wait for each other.
      for (; j + 2 * L <= cols; j += 2 * L) {
        FloatVector e0 = FloatVector.zero(S);
        FloatVector e1 = e0;
        FloatVector o0 = e0;
        FloatVector o1 = e0;
        int r = first;
        for (; r + 1 < end; r += 2) {
          int o = r * cols + j;
          e0 = e0.add(FloatVector.fromArray(S, dy, o));
          e1 = e1.add(FloatVector.fromArray(S, dy, o + L));
          o0 = o0.add(FloatVector.fromArray(S, dy, o + cols));
          o1 = o1.add(FloatVector.fromArray(S, dy, o + cols + L));
        }
        if (r < end) {
          e0 = e0.add(FloatVector.fromArray(S, dy, r * cols + j));
          e1 = e1.add(FloatVector.fromArray(S, dy, r * cols + j + L));
        }
        e0.add(o0).intoArray(acc, j);
        e1.add(o1).intoArray(acc, j + L);
      }
      for (; j < cols; j++) {
        float sum = 0f;
        for (int r = first; r < end; r++) {
          sum += dy[r * cols + j];
        }
        acc[j] = sum;
      }
    });
    for (int j = 0; j < cols; j++) {
      float s = 0;
      for (int t = 0; t < parts; t++) {
        s += partial[t][j];
      }
      grads[off + j] = s;
    }
  }
}
