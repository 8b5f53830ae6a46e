package dev.convspark.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.tensor.kernels.ConvBuffers;
import dev.convspark.tensor.kernels.ConvGeometry;
import dev.convspark.tensor.kernels.FastKernels;
import dev.convspark.tensor.kernels.Kernels;
import dev.convspark.tensor.kernels.ReferenceKernels;
import dev.convspark.tensor.kernels.ThreadPool;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The fast kernels against the reference ones on random inputs (never zeros). */
class KernelParityTest {

  private static ThreadPool pool;
  private static FastKernels fast;
  /** The other route for a row-major A than the one this CPU takes (read in place, or packed). */
  private static FastKernels otherRoute;
  private static final ReferenceKernels REF = new ReferenceKernels();
  private final Random rnd = new Random(42);

  @BeforeAll
  static void start() {
    pool = new ThreadPool(3);
    fast = new FastKernels(pool);
    otherRoute = new FastKernels(pool, FastKernels.vectorLength() < 16);
  }

  @AfterAll
  static void stop() {
    pool.close();
  }

  private float[] random(int n) {
    float[] a = new float[n];
    for (int i = 0; i < n; i++) {
      a[i] = (float) (rnd.nextGaussian() + 0.1);
    }
    return a;
  }

  static void assertClose(float[] expected, float[] actual, double relTol, String what) {
    double maxAbs = 1e-6;
    for (float e : expected) {
      maxAbs = Math.max(maxAbs, Math.abs(e));
    }
    for (int i = 0; i < expected.length; i++) {
      double err = Math.abs(expected[i] - actual[i]) / maxAbs;
      assertTrue(err <= relTol, what + ": element " + i + " expected " + expected[i] + " but was " + actual[i]
          + " (relative error " + err + ")");
    }
  }

  /** Columns of the fast kernels' register tile: two vectors. */
  private static final int NR = 2 * FastKernels.vectorLength();

  @Test
  void gemmMatchesReferenceForEveryTransposeAndAwkwardSizes() {
    int[][] sizes = {{1, 1, 1}, {7, 33, 5}, {50, 1024, 3136}, {97, 65, 300}, {3136, 64, 50}, {13, 800, 64}, {200, 10, 1024},
        {6, 32, 256}, {97, 10, 300}, {61, 95, 513}, {32, 25, 39200}, {5, 40, 9000}, {50, 10, 784}, {784, 10, 50}, {1000, 10, 1024}, {7, 3, 100}, {100, 16, 60},
        // A last register-tile panel of 1 to 4 columns (the edge kernel where A is packed): a
        // batch of 50 as C's columns, an odd depth, a depth of one slice and more.
        {520, 50, 257}, {97, 2 * NR + 1, 70}, {61, NR + 4, 301}, {13, 3, 40}, {520, 50, 512}, {61, NR + 4, 64},
        // A task with several groups of B's panels (a quarter of L2 each), the last ragged.
        {700, 600, 300},
        // C of a few rows, B streamed in place (shortRows): one image through dense1, depths and
        // widths that leave a tail of B's rows and of a vector, and a row longer than two chunks of 1,024.
        {1, 1024, 3136}, {2, 70, 301}, {3, 2065, 64}, {4, 100, 67}, {1, 64, 64}};
    for (FastKernels fast : new FastKernels[] {fast, otherRoute}) {
      eachProduct(sizes, fast, (want, got, what) -> assertClose(want, got, 1e-5, what));
    }
  }

  /** How a product's two results are compared: the reference's, the other kernels', and which product. */
  private interface Compare {
    void check(float[] want, float[] got, String what);
  }

  /**
   * Every transposition of each m x n x k in {@code sizes}, with beta 0, 1 and 0.5 and A, B and C
   * at offsets 3, 5 and 2 of random arrays, by the reference and by {@code other}, compared.
   */
  private void eachProduct(int[][] sizes, Kernels other, Compare compare) {
    for (int[] s : sizes) {
      int m = s[0];
      int n = s[1];
      int k = s[2];
      for (int t = 0; t < 4; t++) {
        boolean ta = (t & 1) != 0;
        boolean tb = (t & 2) != 0;
        float[] a = random(m * k + 3);
        float[] b = random(k * n + 5);
        float[] c0 = random(m * n + 2);
        for (float beta : new float[] {0f, 1f, 0.5f}) {
          float[] want = c0.clone();
          float[] got = c0.clone();
          int lda = ta ? m : k;
          int ldb = tb ? k : n;
          REF.gemm(ta, tb, m, n, k, a, 3, lda, b, 5, ldb, beta, want, 2, n);
          other.gemm(ta, tb, m, n, k, a, 3, lda, b, 5, ldb, beta, got, 2, n);
          compare.check(want, got, "gemm m=" + m + " n=" + n + " k=" + k + " ta=" + ta + " tb=" + tb + " beta=" + beta);
        }
      }
    }
  }

  /**
   * The reference with its rows shared among threads (the GPU check's, on every core) gives the
   * single-threaded reference's products bit for bit: every transposition, beta 0, 1 and 0.5,
   * offsets, and row counts that split unevenly or fall under the size it splits from.
   */
  @Test
  void theReferenceOnThreadsGivesTheSameProductsBitForBit() {
    try (ReferenceKernels threaded = new ReferenceKernels(new ThreadPool(3))) {
      assertEquals(3, threaded.threads());
      eachProduct(new int[][] {{50, 200, 500}, {97, 65, 300}, {13, 800, 64}, {1, 1024, 3136}, {7, 3, 100}}, threaded,
          (want, got, what) -> assertArrayEquals(want, got, what));
    }
  }

  @Test
  void gemmHonoursLeadingDimensionsLargerThanTheMatrix() {
    // 40 rows take the packed route; 3 the one that streams B in place (shortRows).
    for (int m : new int[] {40, 3}) {
      int n = 70;
      int k = 90;
      float[] a = random(m * 100);
      float[] b = random(k * 80);
      float[] want = random(m * 75);
      float[] got = want.clone();
      REF.gemm(false, false, m, n, k, a, 0, 100, b, 0, 80, 0f, want, 0, 75);
      fast.gemm(false, false, m, n, k, a, 0, 100, b, 0, 80, 0f, got, 0, 75);
      assertClose(want, got, 1e-5, "gemm with padded rows, m=" + m);
    }
  }

  @Test
  void transposeMatchesTheDefinitionForTallWideAndOddShapes() {
    // The large ones are split over the threads by the fast kernels (3,136 x 50: a dense layer's
    // input gradient at batch 50), in ranges that end mid-vector and a last range left empty.
    int[][] shapes = {{1024, 50}, {50, 1024}, {1, 7}, {7, 1}, {33, 31}, {31, 33}, {300, 9}, {800, 64}, {257, 257},
        {3136, 50}, {50, 3136}, {1001, 37}};
    for (int[] sh : shapes) {
      int rows = sh[0];
      int cols = sh[1];
      float[] src = random(3 + rows * cols);
      float[] dst = random(5 + rows * cols);
      float[] want = dst.clone();
      for (int i = 0; i < rows; i++) {
        for (int j = 0; j < cols; j++) {
          want[5 + j * rows + i] = src[3 + i * cols + j];
        }
      }
      float[] before = dst.clone();
      dev.convspark.tensor.kernels.Transpose.into(src, 3, rows, cols, dst, 5);
      assertClose(want, dst, 0, "transpose of " + rows + " x " + cols);
      float[] packed = java.util.Arrays.copyOfRange(src, 3, src.length);
      for (var k : new dev.convspark.tensor.kernels.Kernels[] {fast, REF}) {
        float[] got = before.clone();
        k.transpose(packed, rows, cols, got, 5);
        assertClose(want, got, 0, k.getClass().getSimpleName() + " transpose of " + rows + " x " + cols);
      }
    }
  }

  @Test
  void im2colCol2imAndPoolingMatchReference() {
    int[][] cases = {
        // n, h, w, c, kh, kw, stride, valid
        {2, 28, 28, 1, 5, 5, 1, 0}, {3, 14, 14, 32, 5, 5, 1, 0}, {2, 9, 7, 3, 3, 3, 2, 0}, {2, 9, 7, 3, 3, 2, 2, 1},
        {1, 5, 5, 4, 5, 5, 1, 1}, {2, 28, 28, 32, 2, 2, 2, 0}, {3, 7, 7, 5, 2, 2, 2, 0}, {2, 11, 6, 2, 3, 3, 3, 1}};
    for (int[] cs : cases) {
      Padding pad = cs[7] == 1 ? Padding.VALID : Padding.SAME;
      ConvGeometry g = ConvGeometry.of(cs[1], cs[2], cs[3], cs[4], cs[5], cs[6], pad);
      int n = cs[0];
      String what = java.util.Arrays.toString(cs);
      float[] x = random(n * g.inputSize());
      int rows = n * g.outputPixels();
      float[] want = new float[rows * g.patchSize()];
      float[] got = new float[rows * g.patchSize()];
      REF.im2col(x, n, g, want);
      fast.im2col(x, n, g, got);
      assertArrayEquals(want, got, "im2col " + what);

      float[] col = random(rows * g.patchSize());
      float[] dxWant = random(n * g.inputSize());
      float[] dxGot = random(n * g.inputSize());
      REF.col2im(col, n, g, dxWant);
      fast.col2im(col, n, g, dxGot);
      assertClose(dxWant, dxGot, 1e-6, "col2im " + what);

      float[] yWant = new float[rows * g.channels()];
      float[] yGot = new float[rows * g.channels()];
      int[] aWant = new int[yWant.length];
      int[] aGot = new int[yWant.length];
      REF.maxPool(x, n, g, yWant, aWant);
      fast.maxPool(x, n, g, yGot, aGot);
      assertArrayEquals(yWant, yGot, "maxPool " + what);
      assertArrayEquals(aWant, aGot, "maxPool argmax " + what);
    }
  }

  @Test
  void fusedConvolutionMatchesUnfoldAndMultiply() {
    int[][] cases = {
        // n, h, w, c, kh, kw, stride, valid, filters
        {50, 14, 14, 32, 5, 5, 1, 0, 64}, {7, 28, 28, 1, 5, 5, 1, 0, 32}, {2, 9, 7, 3, 3, 3, 2, 0, 5},
        {5, 9, 7, 3, 3, 2, 2, 1, 33}, {1, 5, 5, 4, 5, 5, 1, 1, 7}, {4, 11, 6, 2, 3, 3, 3, 1, 40}, {3, 6, 6, 130, 3, 3, 1, 0, 70},
        // one channel, stride 1, whole tiles of filters: the shifted-image route (VALID, an even
        // kernel with uneven SAME padding, a kernel row wider than a register tile, two tiles)
        {3, 10, 9, 1, 3, 4, 1, 1, 64}, {4, 9, 13, 1, 2, 3, 1, 0, 32}, {2, 12, 11, 1, 7, 7, 1, 0, 32},
        {3, 4, 17, 1, 5, 1, 1, 0, 32},
        // several channels, stride 1: the implicit route (filters and channels off whole panels, an
        // even kernel with uneven SAME padding, VALID, more channels than a panel, a 1-wide kernel)
        {2, 9, 7, 3, 3, 3, 1, 0, 5}, {3, 8, 10, 4, 2, 4, 1, 0, 40}, {2, 10, 9, 5, 3, 2, 1, 1, 33},
        {2, 6, 5, 40, 3, 3, 1, 0, 17}, {2, 7, 4, 6, 1, 1, 1, 0, 9}, {1, 3, 3, 2, 3, 3, 1, 1, 4},
        // output rows of 7 pixels (whole 7-row tiles with 512-bit vectors): the forward pass only,
        // and both passes
        {2, 9, 9, 3, 3, 3, 1, 1, 40}, {2, 7, 7, 5, 3, 3, 1, 0, 40},
        // a 1-wide kernel over lines whose last tile runs past them: the padded width is widened
        {2, 5, 13, 4, 1, 1, 1, 0, 33},
        // 5 x 5, stride 1, 8 channels or more: the Winograd route (odd sizes, so tiles past the
        // edges; channels off whole vectors and filters off whole panels; VALID; more channels than
        // a multiply's depth slice; an output smaller than two tiles)
        {2, 9, 7, 9, 5, 5, 1, 0, 33}, {2, 10, 9, 8, 5, 5, 1, 1, 17}, {1, 6, 6, 300, 5, 5, 1, 0, 20},
        {1, 3, 3, 8, 5, 5, 1, 0, 4}, {3, 5, 6, 16, 5, 5, 1, 1, 64}};
    for (FastKernels fast : new FastKernels[] {fast, otherRoute})
    for (int[] cs : cases) {
      ConvGeometry g = ConvGeometry.of(cs[1], cs[2], cs[3], cs[4], cs[5], cs[6], cs[7] == 1 ? Padding.VALID : Padding.SAME);
      int n = cs[0];
      int filters = cs[8];
      String what = java.util.Arrays.toString(cs);
      float[] x = random(n * g.inputSize());
      // The weights from 3, then the bias.
      float[] params = random(3 + g.patchSize() * filters + filters);
      int bias = 3 + g.patchSize() * filters;
      int rows = n * g.outputPixels();
      // What y held before is overwritten, whatever it was.
      float[] yWant = random(rows * filters);
      float[] yGot = random(rows * filters);
      REF.convForward(x, n, g, params, 3, bias, filters, yWant, false, new ConvBuffers());
      ConvBuffers buffers = new ConvBuffers();
      fast.convForward(x, n, g, params, 3, bias, filters, yGot, false, buffers);
      assertClose(yWant, yGot, 1e-5, "conv forward " + what);
      // With its ReLU: exactly the same sums, then max(y, 0), whichever route the layer takes.
      float[] yReluGot = random(rows * filters);
      fast.convForward(x, n, g, params, 3, bias, filters, yReluGot, true, buffers);
      float[] yNoReluGot = random(rows * filters);
      fast.convForward(x, n, g, params, 3, bias, filters, yNoReluGot, false, buffers);
      for (int i = 0; i < yNoReluGot.length; i++) {
        assertEquals(Math.max(yNoReluGot[i], 0f), yReluGot[i], "conv forward with its ReLU " + what + " at " + i);
      }
      float[] dy = random(rows * filters);
      for (boolean withDx : new boolean[] {true, false}) {
        ConvBuffers refBuffers = new ConvBuffers();
        REF.convForward(x, n, g, params, 3, bias, filters, new float[rows * filters], false, refBuffers);
        float[] gWant = random(5 + g.patchSize() * filters);
        float[] gGot = gWant.clone();
        float[] dxWant = withDx ? random(x.length) : null;
        float[] dxGot = withDx ? random(x.length) : null;
        REF.convBackward(x, dy, n, g, params, 3, filters, gWant, dxWant, refBuffers);
        fast.convBackward(x, dy, n, g, params, 3, filters, gGot, dxGot, buffers);
        assertClose(gWant, gGot, 1e-5, "conv weight gradient " + what);
        if (withDx) {
          assertClose(dxWant, dxGot, 1e-5, "conv input gradient " + what);
        }
      }
    }
  }

  /**
   * deep-mnist's conv2 at batch 50 as a 16-thread executor runs it (here on fewer cores): the
   * Winograd route then cuts samples into pieces of tiles (FastKernels.TileRanges), so a thread's
   * range starts and ends inside a sample; its forward pass, weight gradient and input gradient
   * match the reference.
   */
  @Test
  void convolutionsOnSixteenThreadsMatchReference() {
    ConvGeometry g = ConvGeometry.of(14, 14, 32, 5, 5, 1, Padding.SAME);
    int n = 50;
    int filters = 64;
    float[] x = random(n * g.inputSize());
    float[] params = random(g.patchSize() * filters + filters);
    int bias = g.patchSize() * filters;
    int rows = n * g.outputPixels();
    float[] dy = random(rows * filters);
    try (ThreadPool sixteen = new ThreadPool(16)) {
      FastKernels many = new FastKernels(sixteen);
      float[] yWant = new float[rows * filters];
      float[] yGot = new float[rows * filters];
      ConvBuffers refBuffers = new ConvBuffers();
      ConvBuffers buffers = new ConvBuffers();
      REF.convForward(x, n, g, params, 0, bias, filters, yWant, true, refBuffers);
      many.convForward(x, n, g, params, 0, bias, filters, yGot, true, buffers);
      assertClose(yWant, yGot, 1e-5, "conv2 forward on 16 threads");
      float[] gWant = new float[params.length];
      float[] gGot = new float[params.length];
      float[] dxWant = new float[x.length];
      float[] dxGot = new float[x.length];
      REF.convBackward(x, dy, n, g, params, 0, filters, gWant, dxWant, refBuffers);
      many.convBackward(x, dy, n, g, params, 0, filters, gGot, dxGot, buffers);
      assertClose(gWant, gGot, 1e-5, "conv2 weight gradient on 16 threads");
      assertClose(dxWant, dxGot, 1e-5, "conv2 input gradient on 16 threads");
    }
  }

  @Test
  void elementwiseKernelsMatchReference() {
    for (int len : new int[] {7, 1000, 100_003}) {
      float[] x = random(len);
      float[] dy = random(len);
      float[] want = new float[len];
      float[] got = new float[len];
      REF.relu(x, want, len);
      fast.relu(x, got, len);
      assertArrayEquals(want, got, "relu " + len);
      REF.reluBackward(want, dy, x, len);
      float[] dxFast = new float[len];
      fast.reluBackward(want, dy, dxFast, len);
      assertArrayEquals(x, dxFast, "relu backward " + len);
    }
    // Odd row counts leave one row over after the pairs; 48 and 17 columns leave a column tail.
    for (int[] rc : new int[][] {{3, 5}, {39200, 32}, {50, 1024}, {9800, 64}, {20001, 48}, {16385, 17}, {7, 64}}) {
      int rows = rc[0];
      int cols = rc[1];
      float[] params = random(cols + 3);
      float[] want = new float[rows * cols];
      float[] got = new float[rows * cols];
      REF.fillRows(params, 3, want, rows, cols);
      fast.fillRows(params, 3, got, rows, cols);
      assertArrayEquals(want, got, "fillRows");
      float[] dy = random(rows * cols);
      float[] gWant = new float[cols + 2];
      float[] gGot = new float[cols + 2];
      REF.sumRows(dy, rows, cols, gWant, 2);
      fast.sumRows(dy, rows, cols, gGot, 2);
      assertClose(gWant, gGot, 1e-5, "sumRows " + rows + "x" + cols);
    }
  }

  @Test
  void maxPoolBackwardMatchesReference() {
    ConvGeometry g = ConvGeometry.of(9, 7, 3, 3, 3, 2, Padding.SAME);
    int n = 4;
    float[] x = random(n * g.inputSize());
    float[] y = new float[n * g.outputPixels() * g.channels()];
    int[] argmax = new int[y.length];
    REF.maxPool(x, n, g, y, argmax);
    float[] dy = random(y.length);
    float[] want = random(x.length);
    float[] got = random(x.length);
    REF.maxPoolBackward(dy, argmax, n, g, null, want);
    fast.maxPoolBackward(dy, argmax, n, g, null, got);
    assertClose(want, got, 1e-6, "maxPool backward");
    // After a ReLU: only positive inputs take a gradient, as the ReLU's backward pass would give.
    float[] relu = new float[x.length];
    REF.relu(x, relu, x.length);
    REF.maxPool(relu, n, g, y, argmax);
    REF.maxPoolBackward(dy, argmax, n, g, null, want);
    REF.reluBackward(relu, want, want, x.length);
    REF.maxPoolBackward(dy, argmax, n, g, relu, got);
    assertClose(want, got, 0, "maxPool backward masked by its ReLU input (reference)");
    fast.maxPoolBackward(dy, argmax, n, g, relu, got);
    assertClose(want, got, 0, "maxPool backward masked by its ReLU input");
  }
}
