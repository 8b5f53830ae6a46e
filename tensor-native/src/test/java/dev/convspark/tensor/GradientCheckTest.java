package dev.convspark.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.tensor.kernels.ConvGeometry;
import dev.convspark.tensor.kernels.FastKernels;
import dev.convspark.tensor.kernels.Kernels;
import dev.convspark.tensor.kernels.ReferenceKernels;
import dev.convspark.tensor.kernels.ThreadPool;
import dev.convspark.tensor.layers.Conv2d;
import dev.convspark.tensor.layers.Dense;
import dev.convspark.tensor.layers.Dropout;
import dev.convspark.tensor.spec.ModelSpec;
import dev.convspark.tensor.layers.Flatten;
import dev.convspark.tensor.layers.Layer;
import dev.convspark.tensor.layers.MaxPool2d;
import dev.convspark.tensor.layers.Relu;
import dev.convspark.tensor.layers.SoftmaxCrossEntropy;
import java.util.Random;
import java.util.function.Function;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Every layer's backward pass against central finite differences computed in float64 on the
 * layer's definition, for random inputs and shapes (odd sizes, stride 2, SAME and VALID). The
 * checked scalar is {@code L = sum(r * y)} for a random {@code r}, so {@code dL/dy = r}.
 */
class GradientCheckTest {

  // Small enough that a perturbation almost never crosses a ReLU or max-pool kink; the float64
  // forward keeps the difference quotient accurate to about 1e-8.
  private static final double EPS = 1e-6;
  private static ThreadPool pool;
  private static Kernels fast;
  private static final Kernels REF = new ReferenceKernels();
  private final Random rnd = new Random(2024);

  @BeforeAll
  static void start() {
    pool = new ThreadPool(2);
    fast = new FastKernels(pool);
  }

  @AfterAll
  static void stop() {
    pool.close();
  }

  private float[] random(int n) {
    float[] a = new float[n];
    for (int i = 0; i < n; i++) {
      a[i] = (float) rnd.nextGaussian();
    }
    return a;
  }

  /** Values at least 0.01 apart, so no max-pool window holds a near tie. */
  private float[] distinct(int n) {
    float[] a = new float[n];
    for (int i = 0; i < n; i++) {
      a[i] = (i - n / 2) * 0.01f;
    }
    for (int i = n - 1; i > 0; i--) {
      int j = rnd.nextInt(i + 1);
      float t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }

  /**
   * Checks one layer: the engine's float32 forward against the float64 definition, then its
   * input and parameter gradients against central differences of the float64 definition.
   */
  private void check(Layer layer, int n, Function<double[][], double[]> f64, Kernels k) {
    float[] params = random(layer.paramCount());
    float[] x = layer instanceof MaxPool2d ? distinct(n * layer.inputShape().size()) : random(n * layer.inputShape().size());
    float[] y = new float[n * layer.outputShape().size()];
    layer.forward(k, params, x, y, n, true, 77L);
    double[] yRef = f64.apply(new double[][] {Float64Reference.toDouble(params), Float64Reference.toDouble(x)});
    float[] yRefF = new float[yRef.length];
    for (int i = 0; i < yRef.length; i++) {
      yRefF[i] = (float) yRef[i];
    }
    KernelParityTest.assertClose(yRefF, y, 1e-5, layer + " forward");

    float[] r = random(y.length);
    float[] grads = new float[params.length];
    float[] dx = new float[x.length];
    layer.backward(k, params, grads, x, y, r, dx, n);

    double[] p = Float64Reference.toDouble(params);
    double[] xd = Float64Reference.toDouble(x);
    compare(layer + " dx", dx, xd, () -> dot(r, f64.apply(new double[][] {p, xd})));
    compare(layer + " dparams", grads, p, () -> dot(r, f64.apply(new double[][] {p, xd})));
  }

  private void compare(String what, float[] analytic, double[] v, java.util.function.DoubleSupplier loss) {
    if (v.length == 0) {
      return;
    }
    double scale = 1e-3;
    for (float a : analytic) {
      scale = Math.max(scale, Math.abs(a));
    }
    int checks = Math.min(v.length, 80);
    for (int c = 0; c < checks; c++) {
      int i = v.length <= 80 ? c : rnd.nextInt(v.length);
      double old = v[i];
      v[i] = old + EPS;
      double up = loss.getAsDouble();
      v[i] = old - EPS;
      double down = loss.getAsDouble();
      v[i] = old;
      double numeric = (up - down) / (2 * EPS);
      double err = Math.abs(numeric - analytic[i]) / scale;
      assertTrue(err < 2e-4, what + "[" + i + "]: analytic " + analytic[i] + " vs numeric " + numeric + " (relative " + err + ")");
    }
  }

  private static double dot(float[] r, double[] y) {
    double s = 0;
    for (int i = 0; i < y.length; i++) {
      s += r[i] * y[i];
    }
    return s;
  }

  @Test
  void conv2dSameAndValidStrideOneAndTwoOddSizes() {
    int[][] cases = {{7, 7, 3, 3, 3, 4, 1, 0}, {9, 6, 2, 5, 5, 3, 1, 0}, {9, 7, 3, 3, 3, 5, 2, 0}, {8, 9, 2, 3, 2, 4, 2, 1},
        {6, 6, 4, 1, 1, 3, 1, 0}, {5, 5, 1, 5, 5, 2, 1, 1}};
    for (int[] c : cases) {
      for (Kernels k : new Kernels[] {REF, fast}) {
        ConvGeometry g = ConvGeometry.of(c[0], c[1], c[2], c[3], c[4], c[6], c[7] == 1 ? Padding.VALID : Padding.SAME);
        Conv2d conv = new Conv2d("conv", g, c[5]);
        int n = 3;
        check(conv, n, v -> Float64Reference.forward(conv, v[0], v[1], n, null), k);
      }
    }
  }

  @Test
  void maxPoolSameAndValidOddSizes() {
    int[][] cases = {{8, 8, 3, 2, 2, 0}, {7, 5, 2, 2, 2, 0}, {7, 7, 2, 3, 2, 1}, {9, 9, 1, 3, 3, 0}, {5, 6, 4, 2, 1, 1}};
    for (int[] c : cases) {
      for (Kernels k : new Kernels[] {REF, fast}) {
        ConvGeometry g = ConvGeometry.of(c[0], c[1], c[2], c[3], c[3], c[4], c[5] == 1 ? Padding.VALID : Padding.SAME);
        MaxPool2d pool2 = new MaxPool2d("pool", g);
        int n = 2;
        check(pool2, n, v -> Float64Reference.maxPool(g, v[1], n), k);
      }
    }
  }

  @Test
  void denseReluFlatten() {
    for (Kernels k : new Kernels[] {REF, fast}) {
      Dense dense = new Dense("dense", 37, 11);
      check(dense, 5, v -> Float64Reference.forward(dense, v[0], v[1], 5, null), k);
      Dense big = new Dense("dense", 300, 70);
      check(big, 9, v -> Float64Reference.forward(big, v[0], v[1], 9, null), k);
      Relu relu = new Relu("relu", Shape.image(5, 3, 2));
      check(relu, 4, v -> Float64Reference.forward(relu, v[0], v[1], 4, null), k);
      Flatten flat = new Flatten("flatten", Shape.image(3, 4, 2));
      check(flat, 3, v -> Float64Reference.forward(flat, v[0], v[1], 3, null), k);
    }
  }

  /**
   * Told as it goes (a gradient exchange listening), a large dense layer finishes its bias, then its
   * weights' rows from the last block to the first: each index lower than the one before, ending
   * at the layer's first parameter, and every gradient bit for bit that of one multiply.
   */
  /**
   * A dense layer of {@code inputs x units} whose parameters start at 13, random parameters, input
   * and output gradient of {@code n} samples, and the gradients of its backward pass without a
   * listener on {@code k}.
   */
  private record DenseCase(Dense dense, int n, float[] params, float[] x, float[] dy, float[] grads, float[] dx) {
  }

  private DenseCase denseCase(Kernels k, int inputs, int units, int n) {
    Dense dense = new Dense("dense", inputs, units);
    dense.setParamOffset(13);
    float[] params = random(13 + dense.paramCount());
    float[] x = random(n * inputs);
    float[] dy = random(n * units);
    float[] grads = new float[params.length];
    float[] dx = new float[x.length];
    dense.backward(k, params, grads, x, null, dy, dx, n);
    return new DenseCase(dense, n, params, x, dy, grads, dx);
  }

  @Test
  void aDenseLayerThatTellsItsPartsGivesTheGradientsOfOneMultiply() {
    // deep-mnist's first dense layer at two batch sizes, one just large enough, two too small.
    int[][] cases = {{3136, 1024, 25}, {3136, 1024, 50}, {1024, 1024, 3}, {300, 70, 9}, {17, 5, 3}};
    for (int[] c : cases) {
      for (Kernels k : new Kernels[] {REF, fast}) {
        DenseCase d = denseCase(k, c[0], c[1], c[2]);
        Dense dense = d.dense();
        int n = d.n();
        float[] params = d.params();
        float[] x = d.x();
        float[] dy = d.dy();
        float[] whole = d.grads();
        float[] dxWhole = d.dx();
        float[] parts = new float[params.length];
        float[] dxParts = new float[x.length];
        java.util.List<Integer> told = new java.util.ArrayList<>();
        dense.backward(k, params, parts, x, null, dy, dxParts, n, told::add);
        String what = c[0] + " x " + c[1] + ", batch " + n + ", " + k.getClass().getSimpleName();
        assertArrayEquals(whole, parts, what);
        assertArrayEquals(dxWhole, dxParts, what);
        if ((long) c[0] * c[1] >= 1 << 20) {
          assertEquals(13 + dense.weightCount(), told.get(0), "the bias first: " + what);
          assertEquals(13, told.get(told.size() - 1), "the first weight row last: " + what);
          for (int i = 1; i < told.size(); i++) {
            assertTrue(told.get(i) < told.get(i - 1), "falling: " + told + ", " + what);
          }
        } else {
          assertTrue(told.isEmpty(), "too small to cut: " + told);
        }
      }
    }
  }

  /**
   * A listener told that a block of the weight gradient is final may update those weights at once
   * (a sharded optimizer does): the input gradient, which reads the weights, is done by then.
   */
  @Test
  void aListenerToldOfAPartMayChangeThoseWeightsAtOnce() {
    DenseCase d = denseCase(fast, 3136, 1024, 25);
    Dense dense = d.dense();
    int n = d.n();
    float[] params = d.params();
    float[] x = d.x();
    float[] dy = d.dy();
    float[] parts = new float[params.length];
    float[] dxParts = new float[x.length];
    int told = 13 + dense.weightCount();
    int[] lowest = {told};
    dense.backward(fast, params, parts, x, null, dy, dxParts, n, from -> {
      // What a sharded update does to the weights it is told of.
      for (int i = from; i < lowest[0]; i++) {
        params[i] = Float.NaN;
      }
      lowest[0] = Math.min(lowest[0], from);
    });
    assertEquals(13, lowest[0], "every weight row told final");
    assertArrayEquals(d.grads(), parts);
    assertArrayEquals(d.dx(), dxParts);
  }

  /**
   * A listener that takes the factors gets the layer's input and output gradient; the layer then
   * writes its bias and input gradients only. One that declines gets the whole backward pass.
   */
  @Test
  void aDenseLayerHandsItsFactorsToAListenerThatTakesThem() {
    int[][] cases = {{3136, 1024, 25}, {300, 70, 9}};
    for (int[] c : cases) {
      DenseCase d = denseCase(fast, c[0], c[1], c[2]);
      float[] whole = d.grads();
      for (boolean take : new boolean[] {true, false}) {
        float[] grads = new float[d.params().length];
        java.util.Arrays.fill(grads, 7f);
        float[] dx = new float[d.x().length];
        float[][] got = new float[2][];
        int[] shape = new int[4];
        d.dense().backward(fast, d.params(), grads, d.x(), null, d.dy(), dx, d.n(), new dev.convspark.tensor.layers.FactoredGradients() {
          @Override
          public boolean takeFactors(dev.convspark.tensor.kernels.Kernels k, int weightOffset, int inputs, int units, float[] fx, float[] fdy, int fn) {
            shape[0] = weightOffset;
            shape[1] = inputs;
            shape[2] = units;
            shape[3] = fn;
            got[0] = java.util.Arrays.copyOf(fx, fn * inputs);
            got[1] = java.util.Arrays.copyOf(fdy, fn * units);
            return take;
          }

          @Override
          public void accept(int from) {
          }
        });
        String what = c[0] + " x " + c[1] + ", taken " + take;
        assertArrayEquals(new int[] {13, c[0], c[1], d.n()}, shape, what);
        assertArrayEquals(d.x(), got[0], what);
        assertArrayEquals(d.dy(), got[1], what);
        assertArrayEquals(d.dx(), dx, what);
        int b = 13 + d.dense().weightCount();
        assertArrayEquals(java.util.Arrays.copyOfRange(whole, b, whole.length),
            java.util.Arrays.copyOfRange(grads, b, grads.length), "bias: " + what);
        for (int i = 13; i < b; i++) {
          float expected = take ? 7f : whole[i];
          if (grads[i] != expected) {
            assertEquals(expected, grads[i], "weight " + (i - 13) + ": " + what);
          }
        }
      }
    }
  }

  @Test
  void dropoutUsesTheSameMaskForwardAndBackward() {
    Dropout drop = new Dropout("dropout", Shape.vector(40));
    drop.setKeepProb(0.5f);
    int n = 6;
    // Recover the mask the layer drew from its output on an all-ones input.
    float[] ones = new float[n * 40];
    java.util.Arrays.fill(ones, 1f);
    float[] maskF = new float[ones.length];
    drop.forward(REF, new float[0], ones, maskF, n, true, 77L);
    double[] mask = Float64Reference.toDouble(maskF);
    int kept = 0;
    for (double m : mask) {
      assertTrue(m == 0 || m == 2.0, "inverted dropout scales kept values by 1/keepProb, found " + m);
      kept += m > 0 ? 1 : 0;
    }
    assertTrue(kept > 60 && kept < 180, "about half kept, found " + kept + " of 240");
    check(drop, n, v -> Float64Reference.forward(drop, v[0], v[1], n, mask), REF);
    float[] x = random(n * 40);
    float[] y = new float[x.length];
    drop.forward(REF, new float[0], x, y, n, false, 77L);
    KernelParityTest.assertClose(x, y, 0, "dropout in evaluation is the identity");
  }

  /**
   * A batch large enough for the fast kernels to mask its samples on several threads (40 samples
   * of 1,024 values), placed in its global batch as three runs out of order: exactly the masks
   * of {@link Dropout#fillMasks} on one thread, forward and backward.
   */
  @Test
  void dropoutOnSeveralThreadsDrawsTheMasksOfOneThread() {
    int n = 40;
    int size = 1024;
    Dropout drop = new Dropout("dropout", Shape.vector(size));
    drop.setKeepProb(0.5f);
    long[] firsts = {30, 0, 50};
    int[] lengths = {10, 20, 10};
    drop.setRuns(firsts, lengths);
    float[] x = random(n * size);
    float[] y = new float[x.length];
    drop.forward(fast, new float[0], x, y, n, true, 77L);
    float[] mask = new float[x.length];
    Dropout.fillMasks(77L, 0.5f, mask, size, n, firsts, lengths);
    float[] dy = random(x.length);
    float[] dx = new float[x.length];
    drop.backward(fast, new float[0], null, x, y, dy, dx, n);
    for (int i = 0; i < x.length; i++) {
      assertEquals(x[i] * mask[i], y[i], "value " + i + " forward");
      assertEquals(dy[i] * mask[i], dx[i], "value " + i + " backward");
    }
  }

  @Test
  void fusedLayersGiveExactlyTheNumbersOfSeparateOnes() {
    // deep-mnist has conv -> relu -> pool twice; a user stack adds a conv -> relu with no pool
    // after it and a stride-2 conv whose ReLU goes through a pool with overlapping windows.
    for (String text : new String[] {"deep-mnist", "in13x11x1-conv3x3x32-relu-conv3x3x32:s2-relu-pool3:s2-dense10"}) {
      ModelSpec spec = ModelSpec.parse(text);
      for (Kernels k : new Kernels[] {REF, fast}) {
        Network fused = new Network(spec);
        Network separate = new Network(spec, false);
        fused.initialize(5);
        separate.initialize(5);
        fused.setKeepProb(0.5f);
        separate.setKeepProb(0.5f);
        int n = 3;
        float[] x = random(n * spec.inputShape().size());
        float[] dLogits = random(n * spec.numClasses());
        float[] a = fused.forward(k, x, n, true, 9L).clone();
        float[] b = separate.forward(k, x, n, true, 9L).clone();
        KernelParityTest.assertClose(b, a, 0, text + " logits, " + k.getClass().getSimpleName());
        fused.backward(k, x, dLogits, n);
        separate.backward(k, x, dLogits, n);
        KernelParityTest.assertClose(separate.grads(), fused.grads(), 0, text + " gradients, " + k.getClass().getSimpleName());
      }
    }
  }

  @Test
  void dropoutMasksKeepTheirShareAndDependOnSeedAndIndexAlone() {
    int size = 200_000;
    for (float keep : new float[] {0.1f, 0.5f, 0.9f, 1f}) {
      float[] mask = new float[size];
      Dropout.fillMask(123L, keep, mask, 0, size);
      int kept = 0;
      for (float m : mask) {
        assertTrue(m == 0f || m == 1f / keep, "mask values are 0 or 1/keepProb, found " + m);
        kept += m > 0 ? 1 : 0;
      }
      // Binomial: 5 standard deviations at most 0.0056 of the values.
      assertEquals(keep, kept / (double) size, 0.006, "share kept at keepProb " + keep);
      float[] piece = new float[1000];
      Dropout.fillMask(123L, keep, piece, 0, 1000);
      KernelParityTest.assertClose(java.util.Arrays.copyOf(mask, 1000), piece, 0, "a value's draw is its own");
      Dropout.fillMask(123L, keep, piece, 5000, 1000);
      KernelParityTest.assertClose(java.util.Arrays.copyOfRange(mask, 5000, 6000), piece, 0, "a piece from the middle");
    }
    float[] a = new float[1000];
    float[] b = new float[1000];
    Dropout.fillMask(1L, 0.5f, a, 0, 1000);
    Dropout.fillMask(2L, 0.5f, b, 0, 1000);
    int same = 0;
    for (int i = 0; i < 1000; i++) {
      same += a[i] == b[i] ? 1 : 0;
    }
    assertTrue(same > 400 && same < 600, "two seeds' masks agree by chance only, found " + same + " of 1000");
    // The layer seeds of consecutive steps differ by the counter's own step: no shifted copies.
    Dropout.fillMask(7L + 0x9E3779B97F4A7C15L, 0.5f, b, 0, 1000);
    Dropout.fillMask(7L, 0.5f, a, 0, 1000);
    int shifted = 0;
    for (int i = 0; i + 1 < 1000; i++) {
      shifted += b[i] == a[i + 1] ? 1 : 0;
    }
    assertTrue(shifted < 600, "the next step's mask is not this one shifted, found " + shifted + " of 999 equal");
  }

  @Test
  void sampleIndicesPlaceEachSampleAsFillMasksDoes() {
    // Two runs: 2 samples from sample 10 of the global batch, then 3 from sample 3.
    long[] firsts = {10, 3};
    int[] lengths = {2, 3};
    assertArrayEquals(new long[] {10, 11, 3, 4, 5}, Dropout.sampleIndices(5, firsts, lengths));
    assertArrayEquals(new long[] {7, 8, 9}, Dropout.sampleIndices(3, new long[] {7}, null));
    // What a GPU draws from these pieces is fillMasks' mask, value for value.
    int size = 37;
    float[] masks = new float[5 * size];
    Dropout.fillMasks(99L, 0.5f, masks, size, 5, firsts, lengths);
    long[] index = Dropout.sampleIndices(5, firsts, lengths);
    long below = Dropout.keepBelow(0.5f);
    for (int s = 0; s < 5; s++) {
      for (int i = 0; i < size; i++) {
        long z = Dropout.mixSeed(99L) + (index[s] * size + i + 1) * 0x9E3779B97F4A7C15L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        z ^= z >>> 31;
        assertEquals((z >>> 40) < below ? 2f : 0f, masks[s * size + i], "sample " + s + ", value " + i);
      }
    }
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> Dropout.sampleIndices(6, firsts, lengths));
    assertEquals("the runs hold 5 samples but the batch has 6", e.getMessage());
  }

  @Test
  void aBatchSplitAcrossReplicasIsDroppedOutAsTheWholeBatch() {
    // Workers that split a global batch pass each part's first sample: their summed gradients
    // are the whole batch's (up to the order of the sums), dropout included.
    ModelSpec spec = ModelSpec.parse("in6x6x1-conv3x3x4-relu-dense16-relu-dropout-dense10");
    int n = 6;
    int size = spec.inputShape().size();
    float[] x = random(n * size);
    float[] dLogits = random(n * spec.numClasses());
    Network whole = new Network(spec);
    whole.initialize(3);
    whole.setKeepProb(0.5f);
    whole.forward(fast, x, n, true, 17L);
    whole.backward(fast, x, dLogits, n);
    float[] sum = new float[whole.paramCount()];
    Network part = new Network(spec);
    part.initialize(3);
    part.setKeepProb(0.5f);
    for (int[] p : new int[][] {{0, 2}, {2, 4}}) {
      float[] xp = java.util.Arrays.copyOfRange(x, p[0] * size, (p[0] + p[1]) * size);
      float[] dp = java.util.Arrays.copyOfRange(dLogits, p[0] * spec.numClasses(), (p[0] + p[1]) * spec.numClasses());
      part.setFirstSample(p[0]);
      part.forward(fast, xp, p[1], true, 17L);
      part.backward(fast, xp, dp, p[1]);
      for (int i = 0; i < sum.length; i++) {
        sum[i] += part.grads()[i];
      }
    }
    KernelParityTest.assertClose(whole.grads(), sum, 1e-5, "two parts' gradients against the whole batch's");
    part.setFirstSample(0);
    part.forward(fast, java.util.Arrays.copyOfRange(x, 2 * size, 6 * size), 4, true, 17L);
    part.backward(fast, java.util.Arrays.copyOfRange(x, 2 * size, 6 * size),
        java.util.Arrays.copyOfRange(dLogits, 2 * spec.numClasses(), 6 * spec.numClasses()), 4);
    float[] unshifted = part.grads().clone();
    part.setFirstSample(2);
    part.forward(fast, java.util.Arrays.copyOfRange(x, 2 * size, 6 * size), 4, true, 17L);
    part.backward(fast, java.util.Arrays.copyOfRange(x, 2 * size, 6 * size),
        java.util.Arrays.copyOfRange(dLogits, 2 * spec.numClasses(), 6 * spec.numClasses()), 4);
    assertTrue(!java.util.Arrays.equals(unshifted, part.grads()), "the first sample's index changes the masks");
    // Runs out of order: samples 4-5 then 0-1 of the global batch in one part, 2-3 in another.
    float[] runs = new float[whole.paramCount()];
    for (int[][] p : new int[][][] {{{4, 2}, {0, 2}}, {{2, 2}}}) {
      int m = 0;
      long[] firsts = new long[p.length];
      int[] lengths = new int[p.length];
      for (int k = 0; k < p.length; k++) {
        firsts[k] = p[k][0];
        lengths[k] = p[k][1];
        m += p[k][1];
      }
      float[] xp = new float[m * size];
      float[] dp = new float[m * spec.numClasses()];
      int at = 0;
      for (int[] run : p) {
        System.arraycopy(x, run[0] * size, xp, at * size, run[1] * size);
        System.arraycopy(dLogits, run[0] * spec.numClasses(), dp, at * spec.numClasses(), run[1] * spec.numClasses());
        at += run[1];
      }
      part.setRuns(firsts, lengths);
      part.forward(fast, xp, m, true, 17L);
      part.backward(fast, xp, dp, m);
      for (int i = 0; i < runs.length; i++) {
        runs[i] += part.grads()[i];
      }
    }
    KernelParityTest.assertClose(whole.grads(), runs, 1e-5, "parts made of runs against the whole batch");
  }

  @Test
  void softmaxCrossEntropyGradientMatchesFiniteDifferences() {
    int n = 7;
    int classes = 10;
    float[] logits = random(n * classes);
    for (int i = 0; i < logits.length; i++) {
      logits[i] *= 5;
    }
    int[] labels = new int[n];
    for (int s = 0; s < n; s++) {
      labels[s] = rnd.nextInt(classes);
    }
    float[] grad = new float[logits.length];
    SoftmaxCrossEntropy.Result r = SoftmaxCrossEntropy.compute(logits, labels, n, classes, 1f, grad);
    double[] z = Float64Reference.toDouble(logits);
    assertTrue(Math.abs(r.lossSum() - Float64Reference.crossEntropy(z, labels, n, classes)) < 1e-4);
    compare("softmax cross-entropy", grad, z, () -> Float64Reference.crossEntropy(z, labels, n, classes));
    float[] meanGrad = new float[logits.length];
    SoftmaxCrossEntropy.compute(logits, labels, n, classes, 1f / n, meanGrad);
    for (int i = 0; i < grad.length; i++) {
      assertTrue(Math.abs(meanGrad[i] - grad[i] / n) < 1e-7, "mean reduction scales the gradient by 1/n");
    }
  }

  @Test
  void crossEntropyIsStableForHugeLogits() {
    float[] logits = {1000f, -1000f, 0f, 999f};
    float[] grad = new float[4];
    SoftmaxCrossEntropy.Result r = SoftmaxCrossEntropy.compute(logits, new int[] {1, 0}, 2, 2, 1f, grad);
    assertTrue(Double.isFinite(r.lossSum()), "loss " + r.lossSum());
    assertTrue(Math.abs(r.lossSum() - (2000 + 999)) < 1e-3, "loss " + r.lossSum());
    for (float g : grad) {
      assertTrue(Float.isFinite(g));
    }
  }

  @Test
  void wholeNetworkBackwardMatchesFiniteDifferencesThroughTheLoss() {
    Network net = new Network(dev.convspark.tensor.spec.ModelSpec.parse(
        "in9x9x2-conv3x3x4-relu-pool2-conv3x3x3:s2:valid-relu-dense12-relu-dense5"));
    net.initialize(3);
    float[] params = net.params();
    for (int i = 0; i < params.length; i++) {
      params[i] += (float) (0.05 * rnd.nextGaussian());
    }
    int n = 4;
    float[] x = random(n * 9 * 9 * 2);
    int[] labels = {0, 4, 2, 1};
    for (Kernels k : new Kernels[] {REF, fast}) {
      float[] logits = net.forward(k, x, n, true, 1L);
      float[] dLogits = new float[n * 5];
      SoftmaxCrossEntropy.compute(logits, labels, n, 5, 1f, dLogits);
      net.backward(k, x, dLogits, n);
      float[] grads = net.grads().clone();
      double[] p = Float64Reference.toDouble(params);
      double[] xd = Float64Reference.toDouble(x);
      compare("network dparams", grads, p, () -> {
        double[] a = xd;
        for (Layer l : net.layers()) {
          a = l instanceof MaxPool2d
              ? Float64Reference.maxPool(poolGeometry(l), a, n)
              : Float64Reference.forward(l, p, a, n, null);
        }
        return Float64Reference.crossEntropy(a, labels, n, 5);
      });
    }
  }

  private static ConvGeometry poolGeometry(Layer l) {
    Shape in = l.inputShape();
    return ConvGeometry.of(in.height(), in.width(), in.channels(), 2, 2, 2, Padding.SAME);
  }
}
