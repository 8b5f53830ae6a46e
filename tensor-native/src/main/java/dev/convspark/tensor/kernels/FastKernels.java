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
 * <p>The multiply follows the GotoBLAS plan without a shared packed B: each task owns a block of
 * C's rows and a range of its {@code NR}-column panels. For each {@code KC}-deep slice it packs
 * {@link #GROUP} panels of op(B) at a time (a quarter of L2, B read row by row), then takes the
 * block's {@code MR}-row strips one after the other, each strip's tiles along C's rows, so that C
 * is read and written in row segments the hardware prefetchers follow and each strip of A stays
 * in L1 while it goes across the group. A stored transposed is read in place (a column of op(A)
 * is then consecutive floats); a row-major A is read in place too where the vectors are 512 bits
 * wide, and elsewhere packed into strips that stay in L2 (see {@link #inPlaceRows}): a vector of
 * each row after the other ({@link #packAInterleaved}) where that packing is a large share of the
 * work, else {@code MR} floats of each column together. The micro-kernel keeps an
 * {@code MR x NR} tile of C in registers. The depth and row blocks are sized from the CPU's caches
 * ({@link CacheSizes}).
 */
public final class FastKernels implements Kernels {

  private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
  private static final int L = S.length();
  /** Columns of a C tile: two vectors. */
  static final int NR = 2 * L;
  /**
   * Rows of a C tile, 5 or 6 ({@code -Dconvspark.cpu.tileRows}): 6 x 2 accumulators leave registers
   * for B and a broadcast even with AVX2's 16, where the JIT broadcasts each row's value just
   * before its multiply-adds (JDK 17). By default 5 on x86 without AVX-512 from JDK 25: there C2
   * schedules three broadcasts of A ahead of their multiply-adds, so six rows' 12 accumulators, B's
   * two vectors and the broadcasts need 17 registers, and two accumulators went to the stack and
   * back every depth step (seen in the compiled code); five rows' 10 leave room for all of them.
   * {@link #micro} on one core, 64-deep tiles, timed outside the repository (2-core AMD EPYC, Zen
   * 4, {@code -XX:UseAVX=2}): JDK 25 42 GFLOP/s with six rows, 100 with five; JDK 17 103 with six,
   * 97 with five, and {@link #microInterleaved} 36-91 with five (four runs) against 94-105 with
   * six, so JDK 17 keeps six. Every tile kernel and every packing follows this value; the sixth
   * row's code is left out under {@link #SIX}, a constant the JIT folds.
   */
  static final int MR = tileRows(System.getProperty("convspark.cpu.tileRows",
      L <= 8 && Runtime.version().feature() >= 25 && System.getProperty("os.arch", "").matches("amd64|x86_64")
          ? "5" : "6"));
  /** Whether a tile has a sixth row ({@link #MR} is 6). */
  static final boolean SIX = MR == 6;

  /** {@link #MR} from its property's value: {@code 5} or {@code 6}, anything else refused. */
  static int tileRows(String value) {
    if (!value.equals("5") && !value.equals("6")) {
      throw new IllegalArgumentException("convspark.cpu.tileRows must be 5 or 6 but was '" + value + "'");
    }
    return Integer.parseInt(value);
  }
  /** Depth of a slice: a packed B panel ({@code KC x NR} floats) takes half of L1, at least 256 deep. */
  static final int KC = CacheSizes.local().depthFor(NR);
  /** Rows of a block: its packed A ({@code MC x KC} floats) takes half of L2. */
  static final int MC = CacheSizes.local().rowsFor(KC, MR);
  /**
   * Panels of op(B) a task packs in one pass ({@link #packBGroup}) and multiplies before the next:
   * together a quarter of L2, beside the half that A's block takes.
   */
  static final int GROUP = Math.max(1, CacheSizes.local().l2Bytes() / 4 / (KC * NR * Float.BYTES));
  /**
   * Whether {@link #microRows} (A's rows read in place, the route with 512-bit vectors) takes two
   * depth steps an iteration ({@code -Dconvspark.cpu.unrollRows=true}) or one (the default). Compiled
   * by C2, two steps are 61 instructions for 24 multiply-adds against 40 for 12: a core that issues
   * 4 instructions a cycle and has two 512-bit FMA units would be held by the instructions, not the
   * multiplies. On the 2-core AMD EPYC (Zen 4) where it was written both run at its FMA units' peak
   * in L1 (107-116 GFLOP/s a core), and the whole training step and the 2048^3 multiply moved
   * within the day's noise (2 threads: 21.2-27.3 ms a step without, 22.5-25.0 with; the multiply
   * 177-209 GFLOP/s without, 174-202 with), so it stays off until an Intel Xeon has measured it
   * ({@code gpu-check.sh all} times both there). Maven's {@code avx2} test execution turns it on.
   */
  static final boolean UNROLL_ROWS = unrollRows(System.getProperty("convspark.cpu.unrollRows", "false"));

  /** {@link #UNROLL_ROWS} from its property's value: {@code true} or {@code false}, anything else refused. */
  static boolean unrollRows(String value) {
    return Switches.value("convspark.cpu.unrollRows", value);
  }

  /** Below this many multiply-adds the packing costs more than it saves. */
  private static final long SMALL = 16 * 1024;
  private final ThreadPool pool;
  /**
   * Whether a row-major A is read in place ({@link #microRows}) rather than packed: by default
   * where the CPU has 32 vector registers, that is where the vectors are 512 bits wide.
   */
  private final boolean inPlaceRows;
  /** Packed A; {@link #microEdge}'s vector loads run up to one vector past a strip's last column. */
  private final ThreadLocal<float[]> aPack = ThreadLocal.withInitial(() -> new float[MC * KC + L]);
  private final ThreadLocal<float[]> tile = ThreadLocal.withInitial(() -> new float[Math.max(MR * NR, EDGE * L)]);
  private final ThreadLocal<float[]> bPanel = ThreadLocal.withInitial(() -> new float[GROUP * KC * NR]);
  private final ThreadLocal<float[]> narrowB = ThreadLocal.withInitial(() -> new float[0]);
  /**
   * A last panel's columns (at most {@value #EDGE}) of B's slice, each along the depth, for
   * {@link #microEdgeInterleaved}.
   */
  private final ThreadLocal<float[]> edgeColumns = ThreadLocal.withInitial(() -> new float[EDGE * KC]);
  private final ReferenceKernels reference = new ReferenceKernels();

  /** @param pool the threads to use; the kernels do not close it */
  public FastKernels(ThreadPool pool) {
    this(pool, L >= 16);
  }

  /**
   * With the route for a row-major A chosen by the caller: read in place (the default where
   * vectors are 512 bits wide) or packed (elsewhere). For tests and benchmarks, which take both
   * routes on any CPU; the results agree up to the order of additions.
   */
  public FastKernels(ThreadPool pool, boolean inPlaceRows) {
    WarmUp.done();
    this.pool = pool;
    this.inPlaceRows = inPlaceRows;
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
   *
   * <p>One later cause is known: C2's limit of 100 type-check traps in one compilation (the
   * inlined methods' included; {@code -XX:PerMethodTrapLimit}), past which it guards the rest of
   * the Vector API's calls with virtual calls on boxed vectors. With the epilogue that
   * {@link #micro} and {@link #microRows} share, microRows' compilation came to 96 and, in one JVM
   * in 15, to 132; the kernels now stay far below it, and Maven's {@code trap-limit} execution
   * trains with the limit at 10.
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

    /**
     * The micro-kernels on their own, often enough for the JIT to profile and compile them here,
     * with every branch of their epilogue taken: full and partial tiles, beta 0 and 1.
     */
    private static void warmUpMicroKernels() {
      float[] a = values(Math.max(8, L) * MR + 8);
      float[] bp = values((Math.max(8, L) + 1) * NR);
      float[] c = new float[MR * NR];
      float[] tmp = new float[MR * NR];
      float[] edge = new float[EDGE * L];
      int[] offsets = {0, 7, 1, 8, 2, 9, 3, 10};
      float[] c7 = new float[7 * NR];
      for (int i = 0; i < 6000; i++) {
        int mr = i % 3 == 0 ? 1 : MR;
        int nr = i % 4 == 0 ? 1 : NR;
        float beta = i % 2;
        micro(8, a, 0, MR, bp, 0, c, 0, NR, beta, mr, nr, tmp);
        microRows(8 + i % 2, a, 0, 9, bp, 0, c, 0, NR, beta, mr, nr, tmp);
        microInterleaved(L, a, 0, bp, 0, c, 0, NR, beta, mr, nr, tmp);
        if (EDGES) {
          microEdge(7 + i % 2, a, 0, bp, 0, edge);
          microEdgeInterleaved(L, a, 0, bp, edge);
        }
        microWindow(2, 4, a, 0, 8, bp, 0, c, 0, NR);
        if (mr == MR && nr == NR) {
          addTile(tmp, c, 0, NR, beta);
        }
        ImplicitConv.microTable(8, a, i % 2, offsets, 0, bp, 0, c, 0, NR, beta != 0f);
        ImplicitConv.microTableSeven(8, a, i % 2, offsets, 0, bp, 0, c7, 0, NR, beta != 0f);
      }
      WinogradConv.warmUp(values(4096));
    }

    private static void warmUp() {
      warmUpMicroKernels();
      try (ThreadPool one = new ThreadPool(1)) {
        // Both routes for a row-major A, whichever this CPU takes by default.
        for (boolean rows : new boolean[] {false, true}) {
          FastKernels k = new FastKernels(one, rows);
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
          for (int channels : new int[] {1, 3, WinogradConv.MIN_CHANNELS}) {
            int side = channels < WinogradConv.MIN_CHANNELS ? 3 : WinogradConv.K;
            ConvGeometry g = ConvGeometry.of(7, 6, channels, side, side, 1, dev.convspark.tensor.Padding.SAME);
            int filters = 2 * NR;
            float[] x = values(2 * g.inputSize());
            float[] w = values(g.patchSize() * filters);
            float[] y = new float[2 * g.outputPixels() * filters];
            float[] grads = new float[w.length];
            ConvBuffers buffers = new ConvBuffers();
            k.convForward(x, 2, g, w, 0, 0, filters, y, true, buffers);
            k.convForward(x, 2, g, w, 0, 0, filters, y, false, buffers);
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
  }

  @Override
  public int threads() {
    return pool.threads();
  }

  /** The vector width in floats this JVM uses on this CPU. */
  public static int vectorLength() {
    return L;
  }

  /**
   * The instruction set the kernels' vectors map to on this JVM: {@code avx512}, {@code avx2} or
   * {@code sse} on x86 (what {@code -XX:UseAVX} allows of what the CPU has), else the
   * architecture and the vector width.
   */
  public static String isa() {
    String arch = System.getProperty("os.arch", "");
    if (arch.equals("amd64") || arch.equals("x86_64")) {
      return L >= 16 ? "avx512" : L == 8 ? "avx2" : "sse";
    }
    return arch + "-" + L * Float.SIZE + "bit";
  }

  /**
   * {@link #isa()}, what the CPU has beyond it when this JVM leaves it off, and {@link #blocking()}:
   * the line benchmarks print first. HotSpot leaves AVX-512 off by default on some Intel Xeons
   * (the Skylake family: Skylake-SP, and Cascade Lake in recent releases) even though the CPU has
   * it, and the kernels then take their AVX2 route; {@code -XX:UseAVX=3} turns it on.
   */
  public static String describe() {
    return isa() + unusedIsa(cpuFlags("/proc/cpuinfo"), L) + " (" + blocking() + ")";
  }

  /**
   * "" unless the CPU's {@code flags} name AVX-512 ({@code avx512f}) and the vectors in use are
   * narrower ({@code lanes} floats): then a note saying so and how to turn it on.
   */
  static String unusedIsa(java.util.Set<String> flags, int lanes) {
    if (lanes < 16 && flags.contains("avx512f")) {
      return ", the CPU also has avx512 (off in this JVM: -XX:UseAVX=3 turns it on)";
    }
    return "";
  }

  /**
   * A warning for the log where this CPU has AVX-512 and the JVM left it off by its own default
   * (HotSpot does so on the Skylake family of Xeons, common in clouds), so the kernels run their
   * 256-bit route without the user having asked for it; null where it has nothing to say, and where
   * {@code -XX:UseAVX} or {@code -XX:MaxVectorSize} was set on purpose.
   */
  public static String avx512OffWarning() {
    return avx512OffWarning(cpuFlags("/proc/cpuinfo"), L, useAvxOrigin());
  }

  /**
   * {@link #avx512OffWarning()} for the CPU's {@code flags}, vectors of {@code lanes} floats and the
   * origin of the JVM's vector width ({@code DEFAULT} unless set: see {@link #useAvxOrigin()}).
   */
  static String avx512OffWarning(java.util.Set<String> flags, int lanes, String useAvxOrigin) {
    if (unusedIsa(flags, lanes).isEmpty() || !"DEFAULT".equals(useAvxOrigin)) {
      return null;
    }
    return "this CPU has AVX-512 but the JVM chose " + (lanes == 8 ? "AVX2" : lanes * Float.SIZE + "-bit vectors")
        + " by default (HotSpot does so on Skylake-family Xeons), so the CPU kernels run with " + lanes
        + "-float vectors; -XX:UseAVX=3 (for Spark's executors, in spark.executor.extraJavaOptions) turns AVX-512 on,"
        + " and bin/convspark bench compare 3 --isa avx512 against --isa avx2 measures which is faster on this CPU";
  }

  /**
   * Where the JVM's vector width came from, as HotSpot's diagnostic bean says of {@code UseAVX} and
   * {@code MaxVectorSize}: {@code DEFAULT} when nobody set either, else the origin of one that was
   * set ({@code VM_CREATION} from the command line, {@code ENVIRON_VAR} from
   * {@code JAVA_TOOL_OPTIONS}); "unknown" where the JVM does not say (no {@code jdk.management}).
   */
  static String useAvxOrigin() {
    try {
      var bean = java.lang.management.ManagementFactory.getPlatformMXBean(
          com.sun.management.HotSpotDiagnosticMXBean.class);
      if (bean == null) {
        return "unknown";
      }
      for (String option : new String[] {"UseAVX", "MaxVectorSize"}) {
        String origin = bean.getVMOption(option).getOrigin().name();
        if (!origin.equals("DEFAULT")) {
          return origin;
        }
      }
      return "DEFAULT";
    } catch (LinkageError | RuntimeException e) {
      return "unknown";
    }
  }

  /** The CPU's feature flags from the first {@code flags} line of a Linux cpuinfo file; none where unreadable. */
  static java.util.Set<String> cpuFlags(String cpuinfo) {
    try (var lines = java.nio.file.Files.lines(java.nio.file.Path.of(cpuinfo))) {
      return lines.filter(l -> l.startsWith("flags")).findFirst()
          .map(l -> (java.util.Set<String>) new java.util.HashSet<>(Arrays.asList(l.substring(l.indexOf(':') + 1).trim()
              .split("\\s+"))))
          .orElse(java.util.Set.of());
    } catch (java.io.IOException | RuntimeException e) {
      return java.util.Set.of();
    }
  }

  /** The register tile and the blocks chosen for this CPU, for benchmark and log lines. */
  public static String blocking() {
    return "tile " + MR + " x " + NR + ", depth " + KC + ", rows " + MC + (UNROLL_ROWS ? ", in-place rows two depth steps at a time" : "")
        + "; " + CacheSizes.local();
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
    if (!transA && !transB && m <= SHORT_ROWS && n >= 4 * L && k >= 4 * L) {
      shortRows(m, n, k, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
      return;
    }
    int panels = (n + NR - 1) / NR;
    if ((m + MC - 1) / MC * panels < pool.threads() && k >= 2 * KC * pool.threads() && (long) m * n <= 1 << 16) {
      splitDepth(transA, transB, m, n, k, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
      return;
    }
    // Enough tasks for every thread (two each). Each task packs the part of op(A) and of op(B) it
    // multiplies, so C is split along its longer side: into row blocks when C is at least as tall
    // as wide (each of A's rows is then packed once, each panel of B once per block), else into
    // chunks of panels.
    int tasks = 2 * pool.threads();
    int rows = m >= n ? Math.min(MC, ((m + tasks - 1) / tasks + MR - 1) / MR * MR) : MC;
    int mBlocks = (m + rows - 1) / rows;
    int chunks = Math.max(1, Math.min(panels, (tasks + mBlocks - 1) / mBlocks));
    int perChunk = (panels + chunks - 1) / chunks;
    // Nothing is shared between tasks, so each walks the whole depth for its own part of C: one
    // parallel loop per multiply, whatever k is.
    pool.parallelFor(mBlocks * chunks, t -> {
      int q0 = t % chunks * perChunk;
      int q1 = Math.min(panels, q0 + perChunk);
      int ic = t / chunks * rows;
      for (int pc = 0; pc < k; pc += KC) {
        block(transA, transB, a, aOff, lda, null, b, bOff, ldb, null, k, c, cOff, ldc, pc == 0 ? beta : 1f,
            Math.min(m, ic + rows), n, ic, q0, q1, pc, Math.min(KC, k - pc));
      }
    });
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
    int parts = smallParts((long) m * n * k, m);
    int per = (m + parts - 1) / parts;
    pool.parallelFor(parts, t -> {
      float[] lanes = new float[L];
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
          float s0 = sumLanes(acc0, lanes);
          float s1 = sumLanes(acc1, lanes);
          float s2 = sumLanes(acc2, lanes);
          float s3 = sumLanes(acc3, lanes);
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
          float sum = sumLanes(acc, lanes);
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
    float[] bp = padded;
    // Ranges of whole quads of rows, one a thread where the work is worth it (a classifier's
    // weight gradient, 1,024 x 10 over 50 samples, took 60 us on one thread).
    int parts = smallParts((long) m * n * k, m / 4);
    int quads = (m + 3) / 4;
    pool.parallelFor(parts, t -> narrowOuterRows(t * quads / parts * 4, Math.min(m, (t + 1) * quads / parts * 4), n,
        k, a, aOff, lda, bp, beta, c, cOff, ldc));
  }

  /**
   * Rows of C up to which {@link #shortRows} streams B in place instead of packing it. Measured on
   * dense1's product (3,136 x 1,024) on a 2-core AMD EPYC: 1 to 4 rows took 0.14-0.9 ms against
   * 0.48-2.5 packed with either ISA and 1 or 2 threads, but for 4 rows on 2 threads with AVX-512,
   * even (0.52 against 0.49); 6 rows were slower on 2 threads (0.81-0.88 against 0.47-0.67).
   */
  static final int SHORT_ROWS = 4;

  /**
   * C = A B + beta C for a C of a few rows (one image scored alone: dense1's 1 x 1,024 from 3,136
   * inputs) with A and B row-major: B streamed once, in place, row after row, instead of packed
   * into panels first (which read and wrote its 12.8 MB before the product read it again). Each
   * thread takes a range of C's columns, in chunks of {@link #SHORT_CHUNK} that stay in L1, and
   * adds each row of B's range times A's entry into each of C's rows: B's rows are read front to
   * back, as the hardware prefetchers follow. Each element's terms are summed in depth order,
   * after beta times C, whatever the threads.
   */
  private void shortRows(int m, int n, int k, float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                         float beta, float[] c, int cOff, int ldc) {
    int vectors = (n + L - 1) / L;
    int parts = smallParts((long) m * n * k, vectors);
    pool.parallelFor(parts, t -> {
      int j0 = t * vectors / parts * L;
      int j1 = Math.min(n, (t + 1) * vectors / parts * L);
      for (int j = j0; j < j1; j += SHORT_CHUNK) {
        shortChunk(m, k, j1 - j < SHORT_CHUNK ? j1 - j : SHORT_CHUNK, a, aOff, lda, b, bOff + j, ldb, beta, c,
            cOff + j, ldc);
      }
    });
  }

  /** Columns of C that {@link #shortRows} keeps in L1 at a time (4 KB a row). */
  static final int SHORT_CHUNK = 1024;

  /** {@link #shortRows} for {@code w} columns of C from {@code cOff} (and of B from {@code bOff}). */
  private static void shortChunk(int m, int k, int w, float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                                 float beta, float[] c, int cOff, int ldc) {
    int bound = S.loopBound(w);
    for (int i = 0; i < m; i++) {
      int ci = cOff + i * ldc;
      if (beta == 0f) {
        Arrays.fill(c, ci, ci + w, 0f);
      } else if (beta != 1f) {
        for (int j = 0; j < w; j++) {
          c[ci + j] *= beta;
        }
      }
    }
    int p = 0;
    // Four of B's rows at a time: each vector of C is loaded and stored once for four
    // multiply-adds, its terms still added in depth order.
    for (; p + 4 <= k; p += 4) {
      int b0 = bOff + p * ldb;
      int b1 = b0 + ldb;
      int b2 = b1 + ldb;
      int b3 = b2 + ldb;
      for (int i = 0; i < m; i++) {
        int ai = aOff + i * lda + p;
        float x0 = a[ai];
        float x1 = a[ai + 1];
        float x2 = a[ai + 2];
        float x3 = a[ai + 3];
        FloatVector v0 = FloatVector.broadcast(S, x0);
        FloatVector v1 = FloatVector.broadcast(S, x1);
        FloatVector v2 = FloatVector.broadcast(S, x2);
        FloatVector v3 = FloatVector.broadcast(S, x3);
        int ci = cOff + i * ldc;
        int j = 0;
        for (; j < bound; j += L) {
          FloatVector acc = v0.fma(FloatVector.fromArray(S, b, b0 + j), FloatVector.fromArray(S, c, ci + j));
          acc = v1.fma(FloatVector.fromArray(S, b, b1 + j), acc);
          acc = v2.fma(FloatVector.fromArray(S, b, b2 + j), acc);
          v3.fma(FloatVector.fromArray(S, b, b3 + j), acc).intoArray(c, ci + j);
        }
        for (; j < w; j++) {
          float acc = Math.fma(x0, b[b0 + j], c[ci + j]);
          acc = Math.fma(x1, b[b1 + j], acc);
          acc = Math.fma(x2, b[b2 + j], acc);
          c[ci + j] = Math.fma(x3, b[b3 + j], acc);
        }
      }
    }
    for (; p < k; p++) {
      int bp = bOff + p * ldb;
      for (int i = 0; i < m; i++) {
        float x = a[aOff + i * lda + p];
        int ci = cOff + i * ldc;
        FloatVector xv = FloatVector.broadcast(S, x);
        int j = 0;
        for (; j < bound; j += L) {
          xv.fma(FloatVector.fromArray(S, b, bp + j), FloatVector.fromArray(S, c, ci + j)).intoArray(c, ci + j);
        }
        for (; j < w; j++) {
          c[ci + j] = Math.fma(x, b[bp + j], c[ci + j]);
        }
      }
    }
  }

  /**
   * How many threads share a small multiply of {@code work} multiply-adds split into at most
   * {@code units} pieces: one per 64 K of work, at most one a thread, at least one.
   */
  private int smallParts(long work, int units) {
    return (int) Math.max(1, Math.min(Math.min(pool.threads(), units), work >> 16));
  }

  /** Rows {@code [i0, i1)} of {@link #narrowOuter}'s C from B's padded rows {@code padded}. */
  private void narrowOuterRows(int i0, int i1, int n, int k, float[] a, int aOff, int lda, float[] padded, float beta,
                               float[] c, int cOff, int ldc) {
    float[] row = tile.get();
    int i = i0;
    int m = i1;
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
  private void splitDepth(boolean transA, boolean transB, int m, int n, int k, float[] a, int aOff, int lda,
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
          block(transA, transB, a, aOff, lda, null, b, bOff, ldb, null, k, partial[t], 0, n, pc == k0 ? 0f : 1f,
              m, n, ib * MC, 0, panels, pc, Math.min(KC, k1 - pc));
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
   * One task: rows [ic, min(ic+MC, m)) of C, column panels [q0, q1), for the depth slice [pc, pc+kc).
   * {@code aStrips} is op(A) already packed whole as {@link #packA} packs a slice (strip r's column
   * p at {@code (r * k + p) * MR}; {@code ic} a multiple of MR), or null; {@code bPanels} is op(B)
   * already packed whole by {@link #packPanels}, or null to pack each panel's slice here.
   */
  private void block(boolean transA, boolean transB, float[] a, int aOff, int lda, float[] aStrips, float[] b, int bOff,
                     int ldb, float[] bPanels, int k, float[] c, int cOff, int ldc, float beta, int m, int n, int ic,
                     int q0, int q1, int pc, int kc) {
    if (q0 >= q1) {
      return;
    }
    int mc = Math.min(MC, m - ic);
    float[] tmp = tile.get();
    // A stored transposed is read in place: a column of op(A) is MR consecutive floats of one row.
    // A row-major A is packed into MR-row strips, column by column, to be read the same way (read
    // in place, its six rows need six index registers, and with AVX2's 16 vector registers the
    // loop then ran at half speed); so is a last strip of fewer than MR rows.
    float[] ap = aPack.get();
    float[] aArr = ap;
    int aBase = 0;
    int rowStep = kc;
    boolean inPlace = aStrips == null && transA;
    boolean rowsInPlace = aStrips == null && !transA && inPlaceRows;
    // A row-major A packed with vector copies, L floats of a row at a time ({@link #microInterleaved}'s
    // layout), where the slice is a whole number of vectors deep and the task multiplies it by a
    // quarter of a group of B's panels at most, so that the packing is a large share of its work
    // (a dense layer's input gradient at batch 50: 4 panels). A strip's columns of MR floats need a
    // scalar read and write of every float, two to three times as long; but over many panels
    // {@link #micro} on such strips ran about 3% faster than the interleaved route in a 2048^3
    // multiply (128 panels a task), and alike in dense1's forward pass at batch 50 (16).
    boolean interleaved = aStrips == null && !transA && !inPlaceRows && kc % L == 0 && q1 - q0 <= GROUP / 4;
    if (aStrips != null) {
      aArr = aStrips;
      aBase = ic * k + pc * MR;
      rowStep = k;
    } else if (rowsInPlace) {
      aArr = a;
      aBase = aOff + ic * lda + pc;
      rowStep = lda;
    } else if (interleaved) {
      packAInterleaved(a, aOff, lda, ic, mc, pc, kc, ap);
    } else if (!transA) {
      packA(false, a, aOff, lda, ic, mc, pc, kc, ap);
    } else {
      aArr = a;
      aBase = aOff + pc * lda + ic;
      rowStep = 1;
      if (mc % MR != 0) {
        packA(true, a, aOff, lda, ic + mc - mc % MR, mc % MR, pc, kc, ap);
      }
    }
    int aCs = inPlace ? lda : MR;
    float[] own = bPanels == null ? bPanel.get() : null;
    float[] edgeB = interleaved ? edgeColumns.get() : null;
    // A group of B's panels at a time, packed together; within it, strip by strip of A, each
    // strip's tiles along C's rows, so that C is read and written a row segment after the other,
    // which the hardware's prefetchers follow (down the panel, C's rows are a stride apart).
    for (int g0 = q0; g0 < q1; g0 += GROUP) {
      int g1 = Math.min(q1, g0 + GROUP);
      if (own != null) {
        packBGroup(transB, b, bOff, ldb, pc, kc, g0, g1, n, own);
      }
      float[] bArr = own != null ? own : bPanels;
      int lastNr = Math.min(NR, n - (g1 - 1) * NR);
      if (EDGES && interleaved && lastNr <= EDGE) {
        int from = own != null ? (g1 - 1 - g0) * kc * NR : ((g1 - 1) * k + pc) * NR;
        for (int p = 0; p < kc; p++) {
          for (int j = 0; j < lastNr; j++) {
            edgeB[j * kc + p] = bArr[from + p * NR + j];
          }
        }
      }
      for (int ir = 0; ir < mc; ir += MR) {
        int mr = Math.min(MR, mc - ir);
        for (int q = g0; q < g1; q++) {
          int j = q * NR;
          int nr = Math.min(NR, n - j);
          int bBase = own != null ? (q - g0) * kc * NR : (q * k + pc) * NR;
          int cAt = cOff + (ic + ir) * ldc + j;
          if (EDGES && nr <= EDGE && aArr == ap) {
            // A last panel of a few columns (a batch of 50 as C's columns leaves 2): one vector down
            // each packed column of A instead of a whole tile's 12 multiply-adds per depth step.
            if (interleaved) {
              microEdgeInterleaved(kc, ap, ir * kc, edgeB, tmp);
            } else {
              microEdge(kc, ap, ir * kc, bArr, bBase, tmp);
            }
            edgeTile(tmp, c, cAt, ldc, beta, mr, nr);
            continue;
          }
          if (interleaved) {
            microInterleaved(kc, ap, ir * kc, bArr, bBase, c, cAt, ldc, beta, mr, nr, tmp);
            if (mr < MR || nr < NR) {
              copyTile(tmp, c, cAt, ldc, beta, mr, nr);
            } else if (beta != 0f) {
              addTile(tmp, c, cAt, ldc, beta);
            }
            continue;
          }
          if (rowsInPlace) {
            microRows(kc, a, aBase + ir * rowStep, lda, bArr, bBase, c, cAt, ldc, beta, mr, nr, tmp);
          } else if (mr < MR && inPlace) {
            micro(kc, ap, 0, MR, bArr, bBase, c, cAt, ldc, beta, mr, nr, tmp);
          } else {
            micro(kc, aArr, aBase + ir * rowStep, aCs, bArr, bBase, c, cAt, ldc, beta, mr, nr, tmp);
          }
          if (mr < MR || nr < NR) {
            copyTile(tmp, c, cAt, ldc, beta, mr, nr);
          }
        }
      }
    }
  }

  /**
   * Packs rows [ic, ic+mc) x depth [pc, pc+kc) of op(A) into MR-row strips, each column's MR
   * floats together (strip r's column p at {@code r * MR * kc + p * MR}), zero-padded to MR rows.
   */
  private static void packA(boolean transA, float[] a, int aOff, int lda, int ic, int mc, int pc, int kc, float[] ap) {
    for (int ir = 0; ir < mc; ir += MR) {
      int mr = Math.min(MR, mc - ir);
      int base = ir * kc;
      if (transA) {
        for (int p = 0; p < kc; p++) {
          System.arraycopy(a, aOff + (pc + p) * lda + ic + ir, ap, base + p * MR, mr);
        }
      } else if (mr == MR) {
        // A whole strip column by column: a read from each row and MR consecutive writes per
        // column (row by row, the writes were MR apart, about twice as slow).
        int r0 = aOff + (ic + ir) * lda + pc;
        int r1 = r0 + lda;
        int r2 = r1 + lda;
        int r3 = r2 + lda;
        int r4 = r3 + lda;
        int r5 = r4 + lda;
        for (int p = 0, o = base; p < kc; p++, o += MR) {
          ap[o] = a[r0 + p];
          ap[o + 1] = a[r1 + p];
          ap[o + 2] = a[r2 + p];
          ap[o + 3] = a[r3 + p];
          ap[o + 4] = a[r4 + p];
          if (SIX) {
            ap[o + 5] = a[r5 + p];
          }
        }
      } else {
        // Along each row of A, so that the reads are sequential.
        for (int i = 0; i < mr; i++) {
          for (int p = 0, from = aOff + (ic + ir + i) * lda + pc; p < kc; p++) {
            ap[base + p * MR + i] = a[from + p];
          }
        }
      }
      if (mr < MR) {
        for (int p = 0; p < kc; p++) {
          Arrays.fill(ap, base + p * MR + mr, base + (p + 1) * MR, 0f);
        }
      }
    }
  }

  /**
   * Packs rows [ic, ic+mc) x depth [pc, pc+kc) of a row-major A ({@code kc} a multiple of L) in
   * {@link #microInterleaved}'s layout: strip r's rows one after the other for each L-deep block
   * (its row i's column p at {@code r * MR * kc + (p - p % L) * MR + i * L + p % L}), with plain
   * vector copies along each row. A last strip of fewer than MR rows leaves its other rows as they
   * were: their sums go to rows of the tile that are never written to C.
   */
  private static void packAInterleaved(float[] a, int aOff, int lda, int ic, int mc, int pc, int kc, float[] ap) {
    for (int ir = 0; ir < mc; ir += MR) {
      int mr = Math.min(MR, mc - ir);
      for (int i = 0; i < mr; i++) {
        for (int p = 0, from = aOff + (ic + ir + i) * lda + pc, to = ir * kc + i * L; p < kc;
             p += L, from += L, to += MR * L) {
          FloatVector.fromArray(S, a, from).intoArray(ap, to);
        }
      }
    }
  }

  /**
   * All of op(B) ({@code k x n}) as NR-column panels, zero-padded: panel q's row p at
   * {@code (q * k + p) * NR}. For an operand many small multiplies share (a layer's weights).
   */
  static void packPanels(boolean transB, float[] b, int bOff, int ldb, int k, int n, float[] out) {
    for (int q = 0; q * NR < n; q++) {
      packBPanel(transB, b, bOff, ldb, 0, k, q * NR, Math.min(NR, n - q * NR), out, q * k * NR);
    }
  }

  /** Floats {@link #packPanels} writes for a {@code k x n} op(B). */
  static int panelsSize(int k, int n) {
    return (n + NR - 1) / NR * k * NR;
  }

  /**
   * Packs panels [q0, q1) of op(B) for depth [pc, pc+kc), panel q at {@code (q - q0) * kc * NR}. A
   * row-major B is read row by row along the group's columns (packed a panel at a time, it would
   * be read a short piece of each of kc rows a stride apart: a cache miss a row, which no
   * prefetcher follows).
   */
  private static void packBGroup(boolean transB, float[] b, int bOff, int ldb, int pc, int kc, int q0, int q1, int n,
                                 float[] bp) {
    int whole = Math.min(q1, n / NR);
    if (transB || whole <= q0) {
      for (int q = q0; q < q1; q++) {
        packBPanel(transB, b, bOff, ldb, pc, kc, q * NR, Math.min(NR, n - q * NR), bp, (q - q0) * kc * NR);
      }
      return;
    }
    int panel = kc * NR;
    for (int p = 0, row = bOff + pc * ldb, o = 0; p < kc; p++, row += ldb, o += NR) {
      for (int q = q0, from = row + q0 * NR, to = o; q < whole; q++, from += NR, to += panel) {
        FloatVector.fromArray(S, b, from).intoArray(bp, to);
        FloatVector.fromArray(S, b, from + L).intoArray(bp, to + L);
      }
    }
    if (whole < q1) {
      packBPanel(false, b, bOff, ldb, pc, kc, whole * NR, n - whole * NR, bp, (whole - q0) * panel);
    }
  }

  /** Packs one NR-column panel of op(B), columns [j0, j0+nr) of depth [pc, pc+kc), zero-padded to NR, at {@code base}. */
  private static void packBPanel(boolean transB, float[] b, int bOff, int ldb, int pc, int kc, int j0, int nr,
                                 float[] bp, int base) {
    if (!transB && nr == NR) {
      for (int p = 0, from = bOff + pc * ldb + j0, o = base; p < kc; p++, from += ldb, o += NR) {
        FloatVector.fromArray(S, b, from).intoArray(bp, o);
        FloatVector.fromArray(S, b, from + L).intoArray(bp, o + L);
      }
      return;
    }
    if (transB) {
      // Stored transposed: read along B's rows (op(B)'s columns).
      for (int j = 0; j < nr; j++) {
        int from = bOff + (j0 + j) * ldb + pc;
        for (int p = 0; p < kc; p++) {
          bp[base + p * NR + j] = b[from + p];
        }
      }
    } else {
      for (int p = 0; p < kc; p++) {
        System.arraycopy(b, bOff + (pc + p) * ldb + j0, bp, base + p * NR, nr);
      }
    }
    if (nr < NR) {
      for (int p = 0; p < kc; p++) {
        Arrays.fill(bp, base + p * NR + nr, base + (p + 1) * NR, 0f);
      }
    }
  }

  /**
   * One MR x NR tile: C = acc + beta * C, where acc sums over depth p the outer product of A's
   * column p (its MR floats from {@code a[aOff + p * aCs]}) and B's row p (NR floats at
   * {@code bp[bOff + p * NR]}). B's stride is a constant and A's column consecutive, so the JIT
   * checks the bounds once per array, not per load. A tile of fewer than {@code mr = MR} rows or
   * {@code nr = NR} columns is left in {@code tmp} for the caller's {@link #copyTile}: the
   * micro-kernels keep no branch that only some multiplies take, since the JIT compiles such a
   * branch away while it has not been taken, and a later multiply that takes it sent the kernel
   * back through the interpreter and an on-stack recompile that kept its vectors boxed (one JVM
   * in two trained at a third of its speed at batch 512 after batch 50).
   */
  static void micro(int kc, float[] a, int aOff, int aCs, float[] bp, int bOff,
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
      int bo = bOff + p * NR;
      FloatVector b0 = FloatVector.fromArray(S, bp, bo);
      FloatVector b1 = FloatVector.fromArray(S, bp, bo + L);
      int ao = aOff + p * aCs;
      FloatVector x = FloatVector.broadcast(S, a[ao]);
      c00 = b0.fma(x, c00);
      c01 = b1.fma(x, c01);
      x = FloatVector.broadcast(S, a[ao + 1]);
      c10 = b0.fma(x, c10);
      c11 = b1.fma(x, c11);
      x = FloatVector.broadcast(S, a[ao + 2]);
      c20 = b0.fma(x, c20);
      c21 = b1.fma(x, c21);
      x = FloatVector.broadcast(S, a[ao + 3]);
      c30 = b0.fma(x, c30);
      c31 = b1.fma(x, c31);
      x = FloatVector.broadcast(S, a[ao + 4]);
      c40 = b0.fma(x, c40);
      c41 = b1.fma(x, c41);
      if (SIX) {
        x = FloatVector.broadcast(S, a[ao + 5]);
        c50 = b0.fma(x, c50);
        c51 = b1.fma(x, c51);
      }
    }
    if (mr == MR && nr == NR) {
      // Written out row by row: a helper taking vectors would not be inlined into this large
      // method, and vectors passed to a call that is not inlined are boxed on the heap.
      if (beta != 0f) {
        // One multiply-add a vector: sum + beta * C, rounded once (for beta 1, exactly sum + C).
        // Each binary operation (a multiply, an add) inlines a check that C2 guards with
        // type-check traps, and past 100 such traps in one compilation (PerMethodTrapLimit) it
        // guards the rest with virtual calls, on boxed vectors. As a multiply and an add a vector,
        // this epilogue brought microRows' compilation to 96 such traps, and to 132 in the JVMs
        // (one in 15) whose Vector API had recorded one trap more, which kept two sums on the heap.
        FloatVector bv = FloatVector.broadcast(S, beta);
        c00 = FloatVector.fromArray(S, c, cOff).fma(bv, c00);
        c01 = FloatVector.fromArray(S, c, cOff + L).fma(bv, c01);
        c10 = FloatVector.fromArray(S, c, cOff + ldc).fma(bv, c10);
        c11 = FloatVector.fromArray(S, c, cOff + ldc + L).fma(bv, c11);
        c20 = FloatVector.fromArray(S, c, cOff + 2 * ldc).fma(bv, c20);
        c21 = FloatVector.fromArray(S, c, cOff + 2 * ldc + L).fma(bv, c21);
        c30 = FloatVector.fromArray(S, c, cOff + 3 * ldc).fma(bv, c30);
        c31 = FloatVector.fromArray(S, c, cOff + 3 * ldc + L).fma(bv, c31);
        c40 = FloatVector.fromArray(S, c, cOff + 4 * ldc).fma(bv, c40);
        c41 = FloatVector.fromArray(S, c, cOff + 4 * ldc + L).fma(bv, c41);
        if (SIX) {
          c50 = FloatVector.fromArray(S, c, cOff + 5 * ldc).fma(bv, c50);
          c51 = FloatVector.fromArray(S, c, cOff + 5 * ldc + L).fma(bv, c51);
        }
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
      if (SIX) {
        c50.intoArray(c, cOff + 5 * ldc);
        c51.intoArray(c, cOff + 5 * ldc + L);
      }
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
    if (SIX) {
      c50.intoArray(tmp, 5 * NR);
      c51.intoArray(tmp, 5 * NR + L);
    }
  }

  /**
   * {@link #micro} for an A in interleaved strips: each strip's depth in blocks of one vector, a
   * block holding its {@code MR} rows' {@code L} floats one row after the other (row r's column p
   * at {@code aOff + (p - p % L) * MR + r * L + p % L}; {@code kc} a multiple of {@code L}). A
   * transform that yields one vector of a row at a time writes this layout with plain vector
   * stores, where an {@code MR}-row strip ({@code MR} floats of one column together) needs a scalar
   * pass over every float ({@link WinogradConv}'s products with AVX2; see {@link #inPlaceRows}).
   * The rows' offsets are constants, so the loop needs one index into A, as {@link #micro} does,
   * stepped by one each depth step and past the strip's other rows at a block's end. Written as a
   * loop over the blocks around one over a block's {@code L} steps, JDK 25 ran this kernel at 38-49
   * GFLOP/s on one core with AVX2, five rows or six, against 97-99 now with five (128-deep tiles,
   * timed outside the repository, 2-core AMD EPYC, Zen 4); JDK 17 ran both loops alike, 101-105
   * GFLOP/s with AVX2 and 102-112 with AVX-512. (With the index computed from the depth instead, a
   * bounds check stayed on every load, and a 2048^3 multiply through this kernel ran 15% to 25%
   * slower than through {@link #micro}.) Only a whole tile with {@code beta = 0} is written to C;
   * any other is left in {@code tmp} for the caller's {@link #copyTile}. The kernel is kept that
   * small on purpose: with the epilogue of {@link #micro} (C read back and scaled), some JVMs
   * compiled it with its vector stores left as calls on boxed vectors (JFR profiles: the stores'
   * Java fallback sampled inside it), and their step ran 70% slower for the JVM's life: 2 of 5
   * profiled {@code bench engine} runs with {@code -XX:UseAVX=2}, and 2 of about 40 without a
   * profiler; with this epilogue, 0 of 22 profiled runs. A likely cause is C2's inlining budget,
   * which the larger method ran past.
   */
  static void microInterleaved(int kc, float[] a, int aOff, float[] bp, int bOff,
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
    // A's index steps by one along a block and jumps to the next block at its end.
    int ao = aOff;
    int q = 0;
    for (int p = 0; p < kc; p++) {
      int bo = bOff + p * NR;
      FloatVector b0 = FloatVector.fromArray(S, bp, bo);
      FloatVector b1 = FloatVector.fromArray(S, bp, bo + L);
      FloatVector x = FloatVector.broadcast(S, a[ao]);
      c00 = b0.fma(x, c00);
      c01 = b1.fma(x, c01);
      x = FloatVector.broadcast(S, a[ao + L]);
      c10 = b0.fma(x, c10);
      c11 = b1.fma(x, c11);
      x = FloatVector.broadcast(S, a[ao + 2 * L]);
      c20 = b0.fma(x, c20);
      c21 = b1.fma(x, c21);
      x = FloatVector.broadcast(S, a[ao + 3 * L]);
      c30 = b0.fma(x, c30);
      c31 = b1.fma(x, c31);
      x = FloatVector.broadcast(S, a[ao + 4 * L]);
      c40 = b0.fma(x, c40);
      c41 = b1.fma(x, c41);
      if (SIX) {
        x = FloatVector.broadcast(S, a[ao + 5 * L]);
        c50 = b0.fma(x, c50);
        c51 = b1.fma(x, c51);
      }
      ao++;
      if (++q == L) {
        q = 0;
        ao += (MR - 1) * L;
      }
    }
    if (mr == MR && nr == NR && beta == 0f) {
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
      if (SIX) {
        c50.intoArray(c, cOff + 5 * ldc);
        c51.intoArray(c, cOff + 5 * ldc + L);
      }
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
    if (SIX) {
      c50.intoArray(tmp, 5 * NR);
      c51.intoArray(tmp, 5 * NR + L);
    }
  }

  /**
   * One whole {@code MR x NR} tile of a one-channel convolution over a padded image, {@code C = A B}
   * with beta 0: A's row i at depth {@code (r, q)} (kernel row r, column q) is
   * {@code a[aOff + r * width + q + i]}, B's row at {@code bp[bOff + (r * kw + q) * NR]}. The tile
   * stays in registers across the whole window (one {@link #micro} a kernel row read C back and
   * wrote it again each time: conv1's forward pass at batch 50 with AVX2 took 1.2 to 1.6 ms,
   * against 0.8 to 1.1 now in four rounds of five). One loop over the window, A's index stepped by
   * hand at each row's end: written as a loop over the rows around one over the columns, C2 kept
   * the vectors boxed and the pass took 12 ms.
   */
  static void microWindow(int kh, int kw, float[] a, int aOff, int width, float[] bp, int bOff, float[] c, int cOff,
                          int ldc) {
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
    int ao = aOff;
    int q = 0;
    for (int p = 0, depth = kh * kw; p < depth; p++) {
      int bo = bOff + p * NR;
      FloatVector b0 = FloatVector.fromArray(S, bp, bo);
      FloatVector b1 = FloatVector.fromArray(S, bp, bo + L);
      FloatVector x = FloatVector.broadcast(S, a[ao]);
      c00 = b0.fma(x, c00);
      c01 = b1.fma(x, c01);
      x = FloatVector.broadcast(S, a[ao + 1]);
      c10 = b0.fma(x, c10);
      c11 = b1.fma(x, c11);
      x = FloatVector.broadcast(S, a[ao + 2]);
      c20 = b0.fma(x, c20);
      c21 = b1.fma(x, c21);
      x = FloatVector.broadcast(S, a[ao + 3]);
      c30 = b0.fma(x, c30);
      c31 = b1.fma(x, c31);
      x = FloatVector.broadcast(S, a[ao + 4]);
      c40 = b0.fma(x, c40);
      c41 = b1.fma(x, c41);
      if (SIX) {
        x = FloatVector.broadcast(S, a[ao + 5]);
        c50 = b0.fma(x, c50);
        c51 = b1.fma(x, c51);
      }
      ao++;
      if (++q == kw) {
        q = 0;
        ao += width - kw;
      }
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
    if (SIX) {
      c50.intoArray(c, cOff + 5 * ldc);
      c51.intoArray(c, cOff + 5 * ldc + L);
    }
  }

  /** Columns of C that {@link #microEdge} takes at most. */
  static final int EDGE = 4;

  /**
   * Whether one vector holds a strip's {@code MR} rows, as {@link #microEdge} and
   * {@link #microEdgeInterleaved} take them: not with 128-bit vectors (4 floats, aarch64's NEON),
   * where a narrow last panel goes through the whole tile's kernel like any other.
   */
  static final boolean EDGES = L >= MR;

  /**
   * A strip of {@code MR} packed rows of A ({@code a[aOff + p * MR + r]}) times the first
   * {@value #EDGE} columns of a packed B panel, for a last panel that narrow: one vector load per
   * depth step covers a column of A's strip (its lanes past {@code MR} read the next column, and
   * are dropped), multiplied by each column's broadcast value of B. Two depth steps a turn keep
   * eight sums, enough to hide the multiply-add's latency. Column j's row r is left in
   * {@code tmp[j * L + r]} for {@link #edgeTile}.
   */
  static void microEdge(int kc, float[] a, int aOff, float[] bp, int bOff, float[] tmp) {
    FloatVector c0 = FloatVector.zero(S);
    FloatVector c1 = c0;
    FloatVector c2 = c0;
    FloatVector c3 = c0;
    FloatVector d0 = c0;
    FloatVector d1 = c0;
    FloatVector d2 = c0;
    FloatVector d3 = c0;
    int p = 0;
    for (; p + 1 < kc; p += 2) {
      int bo = bOff + p * NR;
      FloatVector x = FloatVector.fromArray(S, a, aOff + p * MR);
      FloatVector y = FloatVector.fromArray(S, a, aOff + (p + 1) * MR);
      c0 = x.fma(FloatVector.broadcast(S, bp[bo]), c0);
      c1 = x.fma(FloatVector.broadcast(S, bp[bo + 1]), c1);
      c2 = x.fma(FloatVector.broadcast(S, bp[bo + 2]), c2);
      c3 = x.fma(FloatVector.broadcast(S, bp[bo + 3]), c3);
      d0 = y.fma(FloatVector.broadcast(S, bp[bo + NR]), d0);
      d1 = y.fma(FloatVector.broadcast(S, bp[bo + NR + 1]), d1);
      d2 = y.fma(FloatVector.broadcast(S, bp[bo + NR + 2]), d2);
      d3 = y.fma(FloatVector.broadcast(S, bp[bo + NR + 3]), d3);
    }
    for (; p < kc; p++) {
      int bo = bOff + p * NR;
      FloatVector x = FloatVector.fromArray(S, a, aOff + p * MR);
      c0 = x.fma(FloatVector.broadcast(S, bp[bo]), c0);
      c1 = x.fma(FloatVector.broadcast(S, bp[bo + 1]), c1);
      c2 = x.fma(FloatVector.broadcast(S, bp[bo + 2]), c2);
      c3 = x.fma(FloatVector.broadcast(S, bp[bo + 3]), c3);
    }
    c0.add(d0).intoArray(tmp, 0);
    c1.add(d1).intoArray(tmp, L);
    c2.add(d2).intoArray(tmp, 2 * L);
    c3.add(d3).intoArray(tmp, 3 * L);
  }

  /**
   * The sum of {@code v}'s lanes, in lane order: {@code ((0 + v[0]) + v[1]) + ...}. Not
   * {@code reduceLanes(ADD)}, whose order the Vector API leaves open: on JDK 17 the interpreted and
   * the compiled code both add in lane order, but on JDK 25 with AVX2 the compiled code adds in
   * another order, so one product gave one sum before the JIT compiled it and another after, and
   * the fused and separate layers' gradients (GradientCheckTest) differed by 1e-7 from run to run.
   * The lane order is the same for every JDK and every stage of compilation. {@code lanes} is
   * scratch of at least {@code L} floats: a store and scalar adds, as fast as JDK 17's
   * {@code reduceLanes} on the logits' products, where extracting the lanes one by one was 15-20%
   * slower with AVX-512.
   */
  static float sumLanes(FloatVector v, float[] lanes) {
    v.intoArray(lanes, 0);
    float s = 0;
    for (int i = 0; i < L; i++) {
      s += lanes[i];
    }
    return s;
  }

  /**
   * {@link #microEdge} for a strip packed by {@link #packAInterleaved}: C's columns of B's last
   * panel are taken along the depth ({@code bt[j * kc + p]}, all {@value #EDGE} rows present, those
   * past the panel's columns never read back), so each sum is a dot product of one of A's rows with
   * one column of B, a vector of depth at a time; two rows a turn keep eight sums. Column j's row r
   * is left in {@code tmp[j * L + r]} for {@link #edgeTile}.
   */
  static void microEdgeInterleaved(int kc, float[] a, int aOff, float[] bt, float[] tmp) {
    float[] lanes = new float[L];
    for (int r = 0; r < MR; r += 2) {
      // With an odd MR the last turn's second row repeats its first; its sums land in tmp's row MR,
      // which is never read.
      int second = Math.min(r + 1, MR - 1) - r;
      FloatVector c0 = FloatVector.zero(S);
      FloatVector c1 = c0;
      FloatVector c2 = c0;
      FloatVector c3 = c0;
      FloatVector d0 = c0;
      FloatVector d1 = c0;
      FloatVector d2 = c0;
      FloatVector d3 = c0;
      for (int p = 0, ao = aOff + r * L; p < kc; p += L, ao += MR * L) {
        FloatVector x = FloatVector.fromArray(S, a, ao);
        FloatVector y = FloatVector.fromArray(S, a, ao + second * L);
        FloatVector b0 = FloatVector.fromArray(S, bt, p);
        FloatVector b1 = FloatVector.fromArray(S, bt, kc + p);
        FloatVector b2 = FloatVector.fromArray(S, bt, 2 * kc + p);
        FloatVector b3 = FloatVector.fromArray(S, bt, 3 * kc + p);
        c0 = x.fma(b0, c0);
        c1 = x.fma(b1, c1);
        c2 = x.fma(b2, c2);
        c3 = x.fma(b3, c3);
        d0 = y.fma(b0, d0);
        d1 = y.fma(b1, d1);
        d2 = y.fma(b2, d2);
        d3 = y.fma(b3, d3);
      }
      tmp[r] = sumLanes(c0, lanes);
      tmp[L + r] = sumLanes(c1, lanes);
      tmp[2 * L + r] = sumLanes(c2, lanes);
      tmp[3 * L + r] = sumLanes(c3, lanes);
      tmp[r + 1] = sumLanes(d0, lanes);
      tmp[L + r + 1] = sumLanes(d1, lanes);
      tmp[2 * L + r + 1] = sumLanes(d2, lanes);
      tmp[3 * L + r + 1] = sumLanes(d3, lanes);
    }
  }

  /** A whole tile left in {@code tmp} added into C with vectors: {@code C = tmp + beta * C}. */
  private static void addTile(float[] tmp, float[] c, int cOff, int ldc, float beta) {
    FloatVector bv = FloatVector.broadcast(S, beta);
    for (int i = 0; i < MR; i++) {
      int ci = cOff + i * ldc;
      FloatVector.fromArray(S, c, ci).fma(bv, FloatVector.fromArray(S, tmp, i * NR)).intoArray(c, ci);
      FloatVector.fromArray(S, c, ci + L).fma(bv, FloatVector.fromArray(S, tmp, i * NR + L)).intoArray(c, ci + L);
    }
  }

  /** Adds the first {@code mr x nr} of what {@link #microEdge} left in {@code tmp} into C: {@code C = tmp + beta * C}. */
  private static void edgeTile(float[] tmp, float[] c, int cOff, int ldc, float beta, int mr, int nr) {
    for (int i = 0; i < mr; i++) {
      for (int j = 0; j < nr; j++) {
        int ci = cOff + i * ldc + j;
        c[ci] = beta == 0 ? tmp[j * L + i] : tmp[j * L + i] + beta * c[ci];
      }
    }
  }

  /** Adds the first {@code mr x nr} of a tile left in {@code tmp} into C: {@code C = tmp + beta * C}. */
  private static void copyTile(float[] tmp, float[] c, int cOff, int ldc, float beta, int mr, int nr) {
    for (int i = 0; i < mr; i++) {
      for (int j = 0; j < nr; j++) {
        int ci = cOff + i * ldc + j;
        c[ci] = beta == 0 ? tmp[i * NR + j] : tmp[i * NR + j] + beta * c[ci];
      }
    }
  }

  /**
   * {@link #micro} for a row-major A read in place (row i's element p at
   * {@code a[aOff + i * lda + p]}; rows past {@code mr} repeat the last). Six rows need six index
   * registers: with 32 vector registers (AVX-512) this runs as fast as a packed A and saves the
   * packing; with AVX2's 16 it ran at half speed, so there A is packed ({@link #inPlaceRows}).
   */
  static void microRows(int kc, float[] a, int aOff, int lda, float[] bp, int bOff,
                            float[] c, int cOff, int ldc, float beta, int mr, int nr, float[] tmp) {
    int a0 = aOff;
    int a1 = aOff + Math.min(1, mr - 1) * lda;
    int a2 = aOff + Math.min(2, mr - 1) * lda;
    int a3 = aOff + Math.min(3, mr - 1) * lda;
    int a4 = aOff + Math.min(4, mr - 1) * lda;
    int a5 = aOff + Math.min(5, mr - 1) * lda;
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
    // With UNROLL_ROWS, two depth steps an iteration, each step's sums added in the same order as
    // one at a time, so that the results are the same bit for bit; without it, C2 removes this loop.
    int p = 0;
    for (int even = UNROLL_ROWS ? kc & ~1 : 0; p < even; p += 2) {
      int bo;
      FloatVector b0;
      FloatVector b1;
      FloatVector x;
      bo = bOff + p * NR;
      b0 = FloatVector.fromArray(S, bp, bo);
      b1 = FloatVector.fromArray(S, bp, bo + L);
      x = FloatVector.broadcast(S, a[a0 + p]);
      c00 = b0.fma(x, c00);
      c01 = b1.fma(x, c01);
      x = FloatVector.broadcast(S, a[a1 + p]);
      c10 = b0.fma(x, c10);
      c11 = b1.fma(x, c11);
      x = FloatVector.broadcast(S, a[a2 + p]);
      c20 = b0.fma(x, c20);
      c21 = b1.fma(x, c21);
      x = FloatVector.broadcast(S, a[a3 + p]);
      c30 = b0.fma(x, c30);
      c31 = b1.fma(x, c31);
      x = FloatVector.broadcast(S, a[a4 + p]);
      c40 = b0.fma(x, c40);
      c41 = b1.fma(x, c41);
      if (SIX) {
        x = FloatVector.broadcast(S, a[a5 + p]);
        c50 = b0.fma(x, c50);
        c51 = b1.fma(x, c51);
      }
      bo = bOff + (p + 1) * NR;
      b0 = FloatVector.fromArray(S, bp, bo);
      b1 = FloatVector.fromArray(S, bp, bo + L);
      x = FloatVector.broadcast(S, a[a0 + p + 1]);
      c00 = b0.fma(x, c00);
      c01 = b1.fma(x, c01);
      x = FloatVector.broadcast(S, a[a1 + p + 1]);
      c10 = b0.fma(x, c10);
      c11 = b1.fma(x, c11);
      x = FloatVector.broadcast(S, a[a2 + p + 1]);
      c20 = b0.fma(x, c20);
      c21 = b1.fma(x, c21);
      x = FloatVector.broadcast(S, a[a3 + p + 1]);
      c30 = b0.fma(x, c30);
      c31 = b1.fma(x, c31);
      x = FloatVector.broadcast(S, a[a4 + p + 1]);
      c40 = b0.fma(x, c40);
      c41 = b1.fma(x, c41);
      if (SIX) {
        x = FloatVector.broadcast(S, a[a5 + p + 1]);
        c50 = b0.fma(x, c50);
        c51 = b1.fma(x, c51);
      }
    }
    for (; p < kc; p++) {
      int bo;
      FloatVector b0;
      FloatVector b1;
      FloatVector x;
      bo = bOff + p * NR;
      b0 = FloatVector.fromArray(S, bp, bo);
      b1 = FloatVector.fromArray(S, bp, bo + L);
      x = FloatVector.broadcast(S, a[a0 + p]);
      c00 = b0.fma(x, c00);
      c01 = b1.fma(x, c01);
      x = FloatVector.broadcast(S, a[a1 + p]);
      c10 = b0.fma(x, c10);
      c11 = b1.fma(x, c11);
      x = FloatVector.broadcast(S, a[a2 + p]);
      c20 = b0.fma(x, c20);
      c21 = b1.fma(x, c21);
      x = FloatVector.broadcast(S, a[a3 + p]);
      c30 = b0.fma(x, c30);
      c31 = b1.fma(x, c31);
      x = FloatVector.broadcast(S, a[a4 + p]);
      c40 = b0.fma(x, c40);
      c41 = b1.fma(x, c41);
      if (SIX) {
        x = FloatVector.broadcast(S, a[a5 + p]);
        c50 = b0.fma(x, c50);
        c51 = b1.fma(x, c51);
      }
    }
    if (mr == MR && nr == NR) {
      // Written out row by row: a helper taking vectors would not be inlined into this large
      // method, and vectors passed to a call that is not inlined are boxed on the heap.
      if (beta != 0f) {
        // One multiply-add a vector, sum + beta * C: see micro.
        FloatVector bv = FloatVector.broadcast(S, beta);
        c00 = FloatVector.fromArray(S, c, cOff).fma(bv, c00);
        c01 = FloatVector.fromArray(S, c, cOff + L).fma(bv, c01);
        c10 = FloatVector.fromArray(S, c, cOff + ldc).fma(bv, c10);
        c11 = FloatVector.fromArray(S, c, cOff + ldc + L).fma(bv, c11);
        c20 = FloatVector.fromArray(S, c, cOff + 2 * ldc).fma(bv, c20);
        c21 = FloatVector.fromArray(S, c, cOff + 2 * ldc + L).fma(bv, c21);
        c30 = FloatVector.fromArray(S, c, cOff + 3 * ldc).fma(bv, c30);
        c31 = FloatVector.fromArray(S, c, cOff + 3 * ldc + L).fma(bv, c31);
        c40 = FloatVector.fromArray(S, c, cOff + 4 * ldc).fma(bv, c40);
        c41 = FloatVector.fromArray(S, c, cOff + 4 * ldc + L).fma(bv, c41);
        if (SIX) {
          c50 = FloatVector.fromArray(S, c, cOff + 5 * ldc).fma(bv, c50);
          c51 = FloatVector.fromArray(S, c, cOff + 5 * ldc + L).fma(bv, c51);
        }
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
      if (SIX) {
        c50.intoArray(c, cOff + 5 * ldc);
        c51.intoArray(c, cOff + 5 * ldc + L);
      }
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
    if (SIX) {
      c50.intoArray(tmp, 5 * NR);
      c51.intoArray(tmp, 5 * NR + L);
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

  /**
   * Sample {@code s}'s patches as {@link #unfold} makes them, written straight into the multiply's
   * MR-row strips (output pixel r's patch element p at {@code ((r / MR) * patch + p) * MR + r % MR};
   * the last strip's missing rows zero), so that the multiply needs no packing pass of its own.
   */
  private static void unfoldStrips(float[] x, int s, ConvGeometry g, float[] out) {
    int patch = g.patchSize();
    int ch = g.channels();
    int kw = g.kernelWidth();
    int xBase = s * g.inputSize();
    int r = 0;
    for (int oh = 0; oh < g.outHeight(); oh++) {
      for (int ow = 0; ow < g.outWidth(); ow++, r++) {
        int row = r / MR * patch * MR + r % MR;
        int iw0 = ow * g.stride() - g.padLeft();
        for (int kh = 0; kh < g.kernelHeight(); kh++) {
          int ih = oh * g.stride() - g.padTop() + kh;
          for (int kx = 0; kx < kw; kx++) {
            int iw = iw0 + kx;
            int o = row + (kh * kw + kx) * ch * MR;
            if (ih < 0 || ih >= g.height() || iw < 0 || iw >= g.width()) {
              for (int c = 0; c < ch; c++) {
                out[o + c * MR] = 0f;
              }
            } else {
              for (int c = 0, from = xBase + (ih * g.width() + iw) * ch; c < ch; c++) {
                out[o + c * MR] = x[from + c];
              }
            }
          }
        }
      }
    }
    for (; r % MR != 0; r++) {
      int row = r / MR * patch * MR + r % MR;
      for (int p = 0; p < patch; p++) {
        out[row + p * MR] = 0f;
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
   * The samples are split over the threads, each taking its samples one at a time, by the first
   * route that takes the convolution: Winograd's F(2 x 2, 5 x 5) for stride-1 5 x 5 kernels over
   * several channels ({@link WinogradConv}); the implicit multiply for other stride-1 kernels
   * ({@link ImplicitConv}); the shifted image for one channel where the implicit route does not
   * take it; else the fused route: each thread unfolds one sample's patches into its own buffer
   * and multiplies them at once, while they are still in its cache, instead of unfolding the
   * whole batch into a matrix that goes to memory and back. The Winograd route adds the bias and
   * applies the ReLU as its output transform writes each pixel; the others start from the bias
   * and add their products to it.
   */
  @Override
  public void convForward(float[] x, int n, ConvGeometry g, float[] params, int wOff, int bOff, int filters,
                          float[] y, boolean relu, ConvBuffers b) {
    int pix = g.outputPixels();
    int patch = g.patchSize();
    int parts = Math.min(pool.threads(), n);
    b.reserve(parts);
    if (WinogradConv.applies(g)) {
      winogradForward(x, n, g, params, wOff, bOff, filters, y, relu, b);
      return;
    }
    // The weights as register-tile panels, once for the whole batch. Each route then writes a
    // sample's output plus the bias (and its ReLU) while the sample is in its thread's cache, not
    // in passes over the whole batch's output, which left conv1's forward pass bound by memory.
    float[] w = b.panels(panelsSize(patch, filters));
    packPanels(false, params, wOff, filters, patch, filters, w);
    if (ImplicitConv.applies(g)) {
      ImplicitConv ic = new ImplicitConv(g, filters);
      pool.parallelFor(parts, t -> {
        float[] img = b.threadCol(t, ic.imageLength);
        float[] out = b.threadDcol(t, ic.rows * ic.filterPanels);
        for (int s = t * n / parts, end = (t + 1) * n / parts; s < end; s++) {
          ic.padChannelMajor(x, s, img);
          ic.forward(img, w, out);
          ic.writeOutput(out, s, y, params, bOff, relu);
        }
      });
      return;
    }
    if (shiftedRoute(g, filters)) {
      Shifted sh = new Shifted(g);
      pool.parallelFor(parts, t -> {
        float[] img = b.threadCol(t, sh.imageLength);
        float[] out = b.threadDcol(t, sh.rows * filters);
        for (int s = t * n / parts, end = (t + 1) * n / parts; s < end; s++) {
          sh.pad(x, s, img);
          for (int j = 0; j < filters; j += NR) {
            for (int v = 0; v < sh.rows; v += MR) {
              // The window's rows one after another, the tile's sums kept in registers throughout:
              // kernel row kh multiplies the padded image from row kh on by that row's weights.
              microWindow(g.kernelHeight(), g.kernelWidth(), img, v, sh.width, w, j / NR * patch * NR, out,
                  v * filters + j, filters);
            }
          }
          for (int oh = 0; oh < g.outHeight(); oh++) {
            for (int ow = 0; ow < g.outWidth(); ow++) {
              biasedInto(out, (oh * sh.width + ow) * filters, params, bOff, y, (s * pix + oh * g.outWidth() + ow) * filters,
                  filters, relu);
            }
          }
        }
      });
      return;
    }
    pool.parallelFor(parts, t -> {
      float[] col = b.threadCol(t, (pix + MR - 1) / MR * MR * patch);
      for (int s = t * n / parts, end = (t + 1) * n / parts; s < end; s++) {
        if (inPlaceRows) {
          unfold(x, s, g, col, 0);
        } else {
          unfoldStrips(x, s, g, col);
        }
        // The product adds to the bias.
        for (int r = s * pix; r < (s + 1) * pix; r++) {
          System.arraycopy(params, bOff, y, r * filters, filters);
        }
        gemmHere(false, !inPlaceRows, pix, filters, patch, col, 0, patch, w, 0, 0, true, 1f, y, s * pix * filters,
            filters);
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
   * image: the multiply reads them in place. Asked only where {@link ImplicitConv} does not take
   * the convolution: with 256-bit vectors, or with its route turned off.
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
    /** Output pixels at the padded width, the extra ones included: the weight gradient's depth. */
    final int depth;
    /** Floats of the padded image buffer, with room for the last tiles' reads past its end. */
    final int imageLength;
    private final ConvGeometry g;

    Shifted(ConvGeometry g) {
      this.g = g;
      this.width = g.outWidth() + g.kernelWidth() - 1;
      this.rows = (g.outHeight() * width + MR - 1) / MR * MR;
      this.depth = g.outHeight() * width;
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

    /**
     * Sample {@code s}'s output gradient at the padded width, the extra pixels' gradients zero, as
     * register-tile panels: panel q's pixel r at {@code (q * depth + r) * NR}.
     */
    void spread(float[] dy, int s, int filters, float[] out) {
      int ow = g.outWidth();
      for (int q = 0; q < filters / NR; q++) {
        for (int oh = 0; oh < g.outHeight(); oh++) {
          int from = (s * g.outputPixels() + oh * ow) * filters + q * NR;
          int to = (q * depth + oh * width) * NR;
          for (int w = 0; w < ow; w++) {
            System.arraycopy(dy, from + w * filters, out, to + w * NR, NR);
          }
          Arrays.fill(out, to + ow * NR, to + width * NR, 0f);
        }
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
    if (WinogradConv.applies(g)) {
      winogradBackward(x, dy, n, g, params, wOff, filters, grads, dx, b);
      return;
    }
    if (ImplicitConv.applies(g)) {
      implicitBackward(x, dy, n, g, params, wOff, filters, grads, dx, b, parts);
      return;
    }
    // W^T (filters x patch) as register-tile panels, the B operand of every sample's dy_s W^T.
    float[] wT = dx == null ? null : b.panels(panelsSize(filters, patch));
    if (wT != null) {
      packPanels(true, params, wOff, filters, filters, patch, wT);
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
      float[] tmp = tile.get();
      float[] dcol = sh != null ? b.threadDcol(t, sh.depth * filters) : wT == null ? null : b.threadDcol(t, pix * patch);
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
          int depth = sh.depth;
          for (int kh = 0; kh < g.kernelHeight(); kh++) {
            for (int k0 = 0; k0 < kw; k0 += MR) {
              for (int j = 0; j < filters; j += NR) {
                int mr = Math.min(MR, kw - k0);
                int at = (kh * kw + k0) * filters + j;
                float beta = s == first ? 0f : 1f;
                micro(depth, col, kh * sh.width + k0, 1, dcol, j / NR * depth * NR, acc, at, filters, beta, mr, NR, tmp);
                if (mr < MR) {
                  copyTile(tmp, acc, at, filters, beta, mr, NR);
                }
              }
            }
          }
          continue;
        }
        unfold(x, s, g, col, 0);
        if (narrowPatch) {
          gemmHere(true, false, patch, filters, pix, col, 0, patch, dy, s * pix * filters, filters, false, s == first ? 0f : 1f,
              acc, 0, filters);
        } else {
          gemmHere(true, false, filters, patch, pix, dy, s * pix * filters, filters, col, 0, patch, false, s == first ? 0f : 1f,
              acc, 0, patch);
        }
        if (dcol != null) {
          gemmHere(false, false, pix, patch, filters, dy, s * pix * filters, filters, wT, 0, 0, true, 0f, dcol, 0, patch);
          fold(dcol, 0, s, g, dx);
        }
      }
    });
    int size = filters * patch;
    float[] dwT = sumPartials(b, parts, size);
    if (patchMajor) {
      System.arraycopy(dwT, 0, grads, wOff, size);
    } else {
      transpose(dwT, filters, patch, grads, wOff);
    }
  }

  /**
   * {@link #convBackward} by {@link ImplicitConv}: each thread pads its samples one at a time, adds
   * their weight gradients into its own sum and writes their input gradients; the threads' sums
   * are added in thread order.
   */
  private void implicitBackward(float[] x, float[] dy, int n, ConvGeometry g, float[] params, int wOff, int filters,
                                float[] grads, float[] dx, ConvBuffers b, int parts) {
    ImplicitConv ic = new ImplicitConv(g, filters);
    float[] flipped = dx == null ? null : b.panels(ic.flippedLength());
    if (flipped != null) {
      ic.packFlipped(params, wOff, flipped);
    }
    int size = ic.gradientLength();
    pool.parallelFor(parts, t -> {
      float[] img = b.threadCol(t, Math.max(ic.lastImageLength, dx == null ? 0 : ic.dyImageLength));
      float[] acc = b.partial(t, size);
      float[] work = b.threadDcol(t, Math.max(ic.gradientPanelsLength(), dx == null ? 0 : ic.dxRows * ic.channelPanels));
      int first = t * n / parts;
      int end = (t + 1) * n / parts;
      if (first == end) {
        Arrays.fill(acc, 0, size, 0f);
      }
      for (int s = first; s < end; s++) {
        ic.padChannelLast(x, s, img);
        ic.packGradient(dy, s, work);
        ic.weightGradient(img, work, acc, s == first);
        if (flipped != null) {
          ic.padGradient(dy, s, img);
          ic.inputGradient(img, flipped, work, s, dx);
        }
      }
    });
    ic.copyGradient(sumPartials(b, parts, size), grads, wOff);
  }

  /**
   * The first {@code size} floats of the threads' partial sums ({@code b.partial(0..parts-1)})
   * added up into {@code b.partial(0)}, which is returned: each element summed in thread order, as
   * a loop over the threads would, but split over the pool by ranges of elements where that is
   * worth a hand-off. With 16 threads, summing conv2's 16 weight gradients on one thread (74,000
   * floats each in the Winograd domain) would hold the other 15 idle.
   */
  private float[] sumPartials(ConvBuffers b, int parts, int size) {
    float[][] p = new float[parts][];
    for (int t = 0; t < parts; t++) {
      p[t] = b.partial(t, size);
    }
    float[] sum = p[0];
    if (parts == 1) {
      return sum;
    }
    int ranges = (long) (parts - 1) * size < 1 << 16 ? 1 : pool.threads();
    // Ranges and chunks of whole vectors; a chunk of the sum stays in L1 while every partial is added to it.
    int per = ((size + ranges - 1) / ranges + L - 1) / L * L;
    int chunk = 1024;
    pool.parallelFor(ranges, r -> {
      for (int from = r * per, end = Math.min(size, from + per); from < end; from += chunk) {
        int len = Math.min(chunk, end - from);
        for (int t = 1; t < parts; t++) {
          addInto(p[t], from, sum, from, len);
        }
      }
    });
    return sum;
  }

  /**
   * The weights as plan {@code p}'s transformed panels ({@link WinogradConv#transformWeights}),
   * ranges of input channels on several threads where there are enough pairs of channels.
   */
  private void transformWeights(WinogradConv p, float[] params, int wOff, boolean flipped, float[] u) {
    Arrays.fill(u, 0, p.weightsLength(), 0f);
    splitRange(p.inChannels, (long) p.inChannels * p.outChannels >= 2048, (c0, c1) ->
        p.transformWeights(params, wOff, flipped, u, WinogradConv.work(0, p.weightScratch()), c0, c1));
  }

  /**
   * {@code body} over {@code [0, count)}: in one range on this thread unless the work is
   * {@code worth} handing out, else in a range per thread (at most {@code count}). For the steps
   * between a convolution's parallel loops (its weights' transforms, worth it from 2,048 pairs of
   * channels), which with 16 threads would leave 15 idle, and for a layer's own loops
   * ({@link #forSampleRanges}).
   */
  private void splitRange(int count, boolean worth, Range body) {
    int parts = worth ? Math.min(pool.threads(), count) : 1;
    if (parts <= 1) {
      body.run(0, count);
      return;
    }
    pool.parallelFor(parts, t -> body.run(t * count / parts, (t + 1) * count / parts));
  }

  /**
   * {@link #convForward} by {@link WinogradConv}: the weights transformed once, then each thread
   * pads its samples one at a time and transforms, multiplies and transforms back a block of
   * {@link WinogradConv#BLOCK} tiles at a time, so that a block's transformed input and products
   * stay in L2 beside the transformed weights.
   */
  private void winogradForward(float[] x, int n, ConvGeometry g, float[] params, int wOff, int bOff, int filters,
                               float[] y, boolean relu, ConvBuffers b) {
    WinogradConv p = WinogradConv.forward(g, filters);
    float[] u = b.panels(p.weightsLength());
    transformWeights(p, params, wOff, false, u);
    int image = p.imageLength();
    int block = WinogradConv.BLOCK;
    TileRanges r = new TileRanges(n, p.tiles, pool.threads());
    b.reserve(r.parts);
    pool.parallelFor(r.parts, t -> {
      float[] in = b.threadCol(t, image + p.inputLength(block));
      float[] m = b.threadDcol(t, p.productLength(block));
      float[] scratch = WinogradConv.work(0, WinogradConv.SCRATCH);
      float[] pixel = WinogradConv.work(1, 4 * p.width);
      for (int s = r.firstSample(t); s <= r.lastSample(t); s++) {
        p.pad(x, s, in);
        winogradBlocks(p, in, u, m, y, s, r.tileFrom(t, s), r.tileTo(t, s), params, bOff, relu, scratch, pixel);
      }
    });
  }

  /**
   * A batch's Winograd tiles ({@code n} samples of {@code tiles}) shared out as contiguous ranges,
   * one a thread, in sample-then-tile order: whole samples where there are enough of them for the
   * threads (eight or more each), else samples cut into equal pieces of tiles. With 16 threads,
   * whole samples of a batch of 50 left the threads with 4 the last to finish while most had 3
   * (78% of the time busy); cut in 3 pieces, 10 pieces against 9.4 (94%). A range is decided by
   * the thread's number alone, so each weight-gradient sum holds the same tiles whatever the
   * timing.
   */
  static final class TileRanges {
    final int parts;
    private final int tiles;
    private final int pieces;
    private final int units;

    TileRanges(int n, int tiles, int threads) {
      this.tiles = tiles;
      this.pieces = Math.max(1, Math.min(tiles, (8 * threads + n - 1) / n));
      this.units = n * pieces;
      this.parts = Math.max(1, Math.min(threads, units));
    }

    private int unitFrom(int t) {
      return (int) ((long) t * units / parts);
    }

    /** The tile (over the whole batch) where thread {@code t}'s range starts, and where it ends. */
    private int from(int t) {
      int u = unitFrom(t);
      return u / pieces * tiles + u % pieces * tiles / pieces;
    }

    private int to(int t) {
      int u = unitFrom(t + 1);
      return u / pieces * tiles + u % pieces * tiles / pieces;
    }

    int firstSample(int t) {
      return from(t) / tiles;
    }

    /** The last sample with tiles in thread {@code t}'s range (its range is never empty). */
    int lastSample(int t) {
      return (to(t) - 1) / tiles;
    }

    /** Thread {@code t}'s tiles of sample {@code s}: from this one to the next. */
    int tileFrom(int t, int s) {
      return Math.max(0, from(t) - s * tiles);
    }

    int tileTo(int t, int s) {
      return Math.min(tiles, to(t) - s * tiles);
    }
  }

  /**
   * A padded sample ({@code in}, the transformed input after it) through plan {@code p}, block by
   * block, into {@code out}: with the bias and ReLU as {@link WinogradConv#transformOutput} adds
   * them ({@code bias} null: none).
   */
  private void winogradBlocks(WinogradConv p, float[] in, float[] u, float[] m, float[] out, int s, int from, int to,
                              float[] bias, int bOff, boolean relu, float[] scratch, float[] pixel) {
    int image = p.imageLength();
    for (int t0 = from; t0 < to; t0 += WinogradConv.BLOCK) {
      int t1 = Math.min(to, t0 + WinogradConv.BLOCK);
      p.transformInput(in, t0, t1, in, image, !inPlaceRows, scratch);
      winogradProduct(p, in, image, t1 - t0, u, m);
      p.transformOutput(m, t0, t1, out, s, bias, bOff, relu, scratch, pixel);
    }
  }

  /**
   * The 36 products of a {@link WinogradConv} plan for {@code rows} tiles:
   * {@code M[.][point] = V[.][point] U[point]}, each point's slice of the transformed input
   * ({@code v} from {@code vOff}) and of the weights' panels being a depth range of one long operand.
   */
  private void winogradProduct(WinogradConv p, float[] v, int vOff, int rows, float[] u, float[] m) {
    int lda = WinogradConv.POINTS * p.depth;
    int ldc = WinogradConv.POINTS * p.width;
    int panels = p.width / NR;
    if (!inPlaceRows) {
      // V in interleaved strips, as the transform wrote it: no packing.
      float[] tmp = tile.get();
      for (int point = 0; point < WinogradConv.POINTS; point++) {
        for (int c0 = 0; c0 < p.depth; c0 += KC) {
          int kc = Math.min(KC, p.depth - c0);
          float beta = c0 == 0 ? 0f : 1f;
          for (int q = 0; q < panels; q++) {
            int bBase = (q * lda + point * p.depth + c0) * NR;
            for (int r0 = 0; r0 < rows; r0 += MR) {
              int mr = Math.min(MR, rows - r0);
              int cAt = r0 * ldc + point * p.width + q * NR;
              microInterleaved(kc, v, vOff + r0 * lda + (point * p.depth + c0) * MR, u, bBase, m, cAt, ldc, beta, mr,
                  NR, tmp);
              if (mr < MR || beta != 0f) {
                copyTile(tmp, m, cAt, ldc, beta, mr, NR);
              }
            }
          }
        }
      }
      return;
    }
    for (int point = 0; point < WinogradConv.POINTS; point++) {
      for (int ic = 0; ic < rows; ic += MC) {
        for (int c0 = 0; c0 < p.depth; c0 += KC) {
          block(false, false, v, vOff, lda, null, null, 0, 0, u, lda, m, point * p.width, ldc, c0 == 0 ? 0f : 1f,
              rows, p.width, ic, 0, panels, point * p.depth + c0, Math.min(KC, p.depth - c0));
        }
      }
    }
  }

  /**
   * {@link #convBackward} by {@link WinogradConv}: each thread adds its samples' weight gradients,
   * in the transformed domain, into its own sum and writes their input gradients (the forward
   * route over the output gradient with the flipped weights); the sums are added in thread order
   * and transformed back once.
   */
  private void winogradBackward(float[] x, float[] dy, int n, ConvGeometry g, float[] params, int wOff, int filters,
                                float[] grads, float[] dx, ConvBuffers b) {
    WinogradConv fw = WinogradConv.forward(g, filters);
    WinogradConv bw = dx == null ? null : WinogradConv.inputGradient(g, filters);
    float[] u = bw == null ? null : b.panels(bw.weightsLength());
    if (bw != null) {
      transformWeights(bw, params, wOff, true, u);
    }
    int size = fw.gradientLength();
    int block = WinogradConv.BLOCK;
    int gradientBlock = WinogradConv.GRADIENT_BLOCK;
    int inLength = fw.imageLength() + fw.inputLength(gradientBlock);
    int outLength = fw.productLength(gradientBlock);
    if (bw != null) {
      inLength = Math.max(inLength, bw.imageLength() + bw.inputLength(block));
      outLength = Math.max(outLength, bw.productLength(block));
    }
    int inSize = inLength;
    int outSize = outLength;
    // The input gradient's tiles are the input's, as many as the forward plan's when the input and
    // output have one size (SAME); otherwise each thread takes whole samples for it.
    TileRanges r = new TileRanges(n, bw == null || bw.tiles == fw.tiles ? fw.tiles : 1, pool.threads());
    b.reserve(r.parts);
    pool.parallelFor(r.parts, t -> {
      float[] in = b.threadCol(t, inSize);
      float[] work = b.threadDcol(t, outSize);
      float[] acc = b.partial(t, size);
      float[] scratch = WinogradConv.work(0, WinogradConv.SCRATCH);
      float[] pixel = WinogradConv.work(1, 4 * Math.max(fw.width, bw == null ? 0 : bw.width));
      int first = r.firstSample(t);
      int image = fw.imageLength();
      boolean whole = bw != null && bw.tiles != fw.tiles;
      for (int s = first; s <= r.lastSample(t); s++) {
        int from = whole ? 0 : r.tileFrom(t, s);
        int to = whole ? fw.tiles : r.tileTo(t, s);
        fw.pad(x, s, in);
        for (int t0 = from; t0 < to; t0 += gradientBlock) {
          int t1 = Math.min(to, t0 + gradientBlock);
          fw.transformInput(in, t0, t1, in, image, false, scratch);
          fw.transformGradient(dy, s, t0, t1, work, scratch, pixel);
          winogradGradientProduct(fw, in, image, t1 - t0, work, acc, s == first && t0 == from);
        }
        if (bw != null) {
          bw.pad(dy, s, in);
          winogradBlocks(bw, in, u, work, dx, s, whole ? 0 : from, whole ? bw.tiles : to, null, 0, false, scratch,
              pixel);
        }
      }
    });
    float[] sum = sumPartials(b, r.parts, size);
    splitRange(fw.outChannels, (long) fw.outChannels * fw.inChannels >= 2048, (f0, f1) -> fw.weightGradient(sum, grads, wOff,
        WinogradConv.work(0, WinogradConv.SCRATCH), f0, f1));
  }

  /**
   * The weight gradient of {@code rows} tiles in the transformed domain, added into {@code acc}
   * ({@code [point][width][depth]}; written when {@code first}): for each point,
   * {@code acc[point] += dy'[.][point]^T V[.][point]}, the depth being the tiles.
   */
  private void winogradGradientProduct(WinogradConv p, float[] v, int vOff, int rows, float[] d, float[] acc,
                                       boolean first) {
    int lda = WinogradConv.POINTS * p.width;
    int ldb = WinogradConv.POINTS * p.depth;
    int panels = (p.depth + NR - 1) / NR;
    for (int point = 0; point < WinogradConv.POINTS; point++) {
      for (int ic = 0; ic < p.width; ic += MC) {
        for (int pc = 0; pc < rows; pc += KC) {
          block(true, false, d, point * p.width, lda, null, v, vOff + point * p.depth, ldb, null, rows, acc,
              point * p.width * p.depth, p.depth, first && pc == 0 ? 0f : 1f, p.width, p.depth, ic, 0, panels, pc,
              Math.min(KC, rows - pc));
        }
      }
    }
  }

  /**
   * {@code C = op(A) * B + beta * C} on the calling thread alone; op(A) is A stored transposed
   * ({@code k x m}) when {@code transA}, or A already in MR-row strips when {@code stripsA} (see
   * {@link #unfoldStrips}; {@code aOff} and {@code lda} unused). B is row-major ({@code k x n}), or
   * already packed by {@link #packPanels} when {@code packedB} ({@code bOff} and {@code ldb} unused).
   */
  private void gemmHere(boolean transA, boolean stripsA, int m, int n, int k, float[] a, int aOff, int lda, float[] b,
                        int bOff, int ldb, boolean packedB, float beta, float[] c, int cOff, int ldc) {
    int mBlocks = (m + MC - 1) / MC;
    int panels = (n + NR - 1) / NR;
    for (int ib = 0; ib < mBlocks; ib++) {
      for (int pc = 0; pc < k; pc += KC) {
        block(transA, false, a, aOff, lda, stripsA ? a : null, b, bOff, ldb, packedB ? b : null, k, c, cOff, ldc,
            pc == 0 ? beta : 1f, m, n, ib * MC, 0, panels, pc, Math.min(KC, k - pc));
      }
    }
  }

  /** {@code dst[d + i] += src[so + i]} for {@code i < len}, vectorised. */
  /**
   * {@code dst[d + j] = bias[j] + src[so + j]} for the {@code len} entries of one pixel, the
   * bias at {@code params[bOff]} on, through a ReLU when {@code relu}: the sums and the ReLU
   * of a bias filled in first, the product added and a ReLU pass after, bit for bit.
   */
  static void biasedInto(float[] src, int so, float[] params, int bOff, float[] dst, int d, int len, boolean relu) {
    int j = 0;
    for (int bound = S.loopBound(len); j < bound; j += L) {
      FloatVector v = FloatVector.fromArray(S, params, bOff + j).add(FloatVector.fromArray(S, src, so + j));
      (relu ? v.max(0f) : v).intoArray(dst, d + j);
    }
    for (; j < len; j++) {
      float v = params[bOff + j] + src[so + j];
      dst[d + j] = relu ? Math.max(v, 0f) : v;
    }
  }

  static void addInto(float[] src, int so, float[] dst, int d, int len) {
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
  public void forSampleRanges(int n, int sampleSize, Range body) {
    splitRange(n, (long) n * sampleSize >= 1 << 14, body);
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

  /**
   * In ranges of the source's rows, one a thread where the matrix is large (a dense layer's input
   * gradient, 3,136 x 50 at batch 50): alone on the calling thread it took about 0.27 ms of a step
   * that 16 threads otherwise run in a few milliseconds.
   */
  @Override
  public void transpose(float[] src, int rows, int cols, float[] dst, int off) {
    int parts = (long) rows * cols < 1 << 15 ? 1 : Math.min(pool.threads(), (rows + 15) / 16);
    if (parts <= 1) {
      Transpose.into(src, rows, cols, dst, off);
      return;
    }
    // Ranges of whole 64-byte lines of the transpose's rows, so that no two threads write one line.
    int per = ((rows + parts - 1) / parts + 15) / 16 * 16;
    pool.parallelFor(parts, t -> {
      int i0 = Math.min(rows, t * per);
      Transpose.rows(src, 0, rows, cols, i0, Math.min(rows, i0 + per), dst, off);
    });
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
