package dev.convspark.tensor.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.tensor.layers.SoftmaxCrossEntropy;
import dev.convspark.tensor.spec.ModelSpec;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Per-sample weights in a training step: a weight of k is the sample k times in the batch. */
class SampleWeightsTest {

  private static final ModelSpec SPEC = ModelSpec.parse("in12x12x1-conv3x3x8-relu-pool2-dense32-relu-dense10");

  private static float[] images(int n, long seed) {
    Random rnd = new Random(seed);
    float[] x = new float[n * SPEC.inputShape().size()];
    for (int i = 0; i < x.length; i++) {
      x[i] = rnd.nextFloat();
    }
    return x;
  }

  /** The loss sum and gradients of one step of {@code runner} on {@code x}, {@code y}, weighted by {@code w}. */
  private static float[] gradients(ModelRunner r, float[] x, int[] y, float[] w, int n, double[] loss) {
    loss[0] = r.computeGradients(x, y, w, n, 1f, 5, new long[] {0}, null).lossSum();
    float[] g = new float[r.paramCount()];
    r.copyGradientsTo(g);
    return g;
  }

  @Test
  void aWeightOfTwoIsTheSampleTwiceAndAWeightOfZeroIsTheSampleLeftOut() {
    int n = 6;
    int size = SPEC.inputShape().size();
    float[] x = images(n, 1);
    int[] y = {3, 1, 4, 1, 5, 9};
    float[] w = {2, 1, 0, 1, 1, 1};
    // Sample 0 twice, sample 2 not at all.
    int[] keep = {0, 0, 1, 3, 4, 5};
    float[] xs = new float[keep.length * size];
    int[] ys = new int[keep.length];
    for (int i = 0; i < keep.length; i++) {
      System.arraycopy(x, keep[i] * size, xs, i * size, size);
      ys[i] = y[keep[i]];
    }
    try (CpuBackend cpu = CpuBackend.create(2); ModelRunner r = cpu.open(SPEC)) {
      r.initialize(7);
      double[] weighted = new double[1];
      double[] repeated = new double[1];
      float[] gw = gradients(r, x, y, w, n, weighted);
      float[] gr = gradients(r, xs, ys, null, keep.length, repeated);
      assertEquals(repeated[0], weighted[0], 1e-6 * Math.abs(repeated[0]));
      double largest = 0;
      double worst = 0;
      for (int i = 0; i < gw.length; i++) {
        largest = Math.max(largest, Math.abs(gr[i]));
        worst = Math.max(worst, Math.abs(gw[i] - gr[i]));
      }
      assertTrue(largest > 0, "the step computed no gradient");
      assertTrue(worst <= 1e-5 * largest, "weighted gradients differ from the repeated samples' by " + worst
          + " of at most " + largest);
    }
  }

  @Test
  void weightsOfOneGiveTheUnweightedStepExactly() {
    int n = 8;
    float[] x = images(n, 2);
    int[] y = {0, 1, 2, 3, 4, 5, 6, 7};
    float[] ones = new float[n];
    java.util.Arrays.fill(ones, 1f);
    try (CpuBackend cpu = CpuBackend.create(2); ModelRunner r = cpu.open(SPEC)) {
      r.initialize(7);
      double[] a = new double[1];
      double[] b = new double[1];
      float[] g1 = gradients(r, x, y, ones, n, a);
      float[] g0 = gradients(r, x, y, null, n, b);
      assertArrayEquals(g0, g1);
      assertEquals(b[0], a[0]);
    }
  }

  @Test
  void aNegativeOrNonFiniteWeightIsRefusedNamingTheSample() {
    int n = 3;
    float[] x = images(n, 3);
    int[] y = {0, 1, 2};
    try (CpuBackend cpu = CpuBackend.create(1); ModelRunner r = cpu.open(SPEC)) {
      r.initialize(7);
      for (float bad : new float[] {-1f, Float.NaN, Float.POSITIVE_INFINITY}) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> r.computeGradients(x, y, new float[] {1, bad, 1}, n, 1f, 5, new long[] {0}, null));
        assertEquals("weight " + bad + " of sample 1 is not a finite number >= 0", e.getMessage());
      }
      IllegalArgumentException few = assertThrows(IllegalArgumentException.class,
          () -> r.computeGradients(x, y, new float[2], n, 1f, 5, new long[] {0}, null));
      assertEquals("3 samples need 3 weights, but weights holds 2", few.getMessage());
    }
    // The loss alone (validation) takes the same weights.
    float[] logits = {1, 2, 3, 3, 2, 1};
    SoftmaxCrossEntropy.Result one = SoftmaxCrossEntropy.compute(logits, new int[] {2, 2}, null, 2, 3, 1f, null);
    SoftmaxCrossEntropy.Result w = SoftmaxCrossEntropy.compute(logits, new int[] {2, 2}, new float[] {0, 3}, 2, 3, 1f,
        null);
    double second = one.lossSum() - SoftmaxCrossEntropy.compute(logits, new int[] {2}, null, 1, 3, 1f, null).lossSum();
    assertEquals(3 * second, w.lossSum(), 1e-12);
    assertEquals(1, w.correct());
  }
}
