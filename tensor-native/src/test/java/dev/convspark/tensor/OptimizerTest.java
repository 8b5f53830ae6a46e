package dev.convspark.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.tensor.optim.Adam;
import dev.convspark.tensor.optim.Optimizer;
import dev.convspark.tensor.optim.Sgd;
import org.junit.jupiter.api.Test;

/** SGD and Adam updates against values computed by hand. */
class OptimizerTest {

  @Test
  void sgdStepsAgainstTheGradient() {
    float[] p = {1f, -2f};
    new Sgd(0.1f).step(p, new float[] {0.5f, -1f});
    assertEquals(0.95f, p[0], 1e-7);
    assertEquals(-1.9f, p[1], 1e-7);
  }

  @Test
  void adamMatchesTensorFlowsFormulaOverTwoSteps() {
    float[] p = {1f};
    Adam adam = new Adam(0.01f, 1);
    // Step 1, g = 2: m = 0.2, v = 0.004, lr_t = 0.01 * sqrt(0.001) / 0.1 = 0.0031623;
    // update = lr_t * 0.2 / (sqrt(0.004) + 1e-8) = 0.0031623 * 3.1623 = 0.01.
    adam.step(p, new float[] {2f});
    assertEquals(1f - 0.01f, p[0], 1e-6);
    // Step 2, g = -1: m = 0.18 - 0.1 = 0.08, v = 0.003996 + 0.001 = 0.004996,
    // lr_t = 0.01 * sqrt(1 - 0.999^2) / (1 - 0.81) = 0.01 * 0.0447102 / 0.19 = 0.00235317,
    // update = 0.00235317 * 0.08 / 0.0706824 = 0.00266338.
    adam.step(p, new float[] {-1f});
    assertEquals(0.99f - 0.00266338f, p[0], 1e-6);
    assertEquals(2, adam.steps());
  }

  @Test
  void adamStateRestoresExactly() {
    Adam a = new Adam(1e-3f, 3);
    float[] p1 = {1, 2, 3};
    a.step(p1, new float[] {0.1f, -0.2f, 0.3f});
    Optimizer b = Optimizer.restore(a.state(), 3);
    float[] p2 = p1.clone();
    float[] g = {0.5f, 0.5f, -0.5f};
    a.step(p1, g);
    b.step(p2, g);
    assertTrue(java.util.Arrays.equals(p1, p2), "a restored optimizer continues identically");
  }

  @Test
  void badNamesAndLearningRatesAreRefused() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Optimizer.create("rmsprop", 0.1f, 1));
    assertTrue(e.getMessage().contains("'rmsprop'"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> Optimizer.create("adam", Float.NaN, 1));
    assertTrue(e.getMessage().contains("learningRate"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> Optimizer.create("sgd", -1f, 1));
  }

  @Test
  void adamVectorisedRangesMatchTheFormulaElementByElement() {
    int n = 77;
    float[] p = new float[n];
    float[] g = new float[n];
    for (int i = 0; i < n; i++) {
      p[i] = (float) Math.cos(i);
      g[i] = (float) Math.sin(3 * i);
    }
    float[] start = p.clone();
    Adam adam = new Adam(1e-3f, n);
    adam.beginStep();
    adam.update(p, g, 0, 40);
    adam.update(p, g, 40, n);
    for (int i = 0; i < n; i++) {
      double m = 0.1 * g[i];
      double v = 0.001 * g[i] * g[i];
      double lrT = 1e-3 * Math.sqrt(1 - 0.999) / (1 - 0.9);
      double want = start[i] - lrT * m / (Math.sqrt(v) + 1e-8);
      assertEquals(want, p[i], 1e-6, "element " + i);
    }
  }

  /**
   * A worker of a sharded update keeps the moments of its ranges only: the parameters it updates
   * and their moments are bit for bit those of an Adam keeping every moment, its moments take
   * its share of the memory, and a range outside its share is refused.
   */
  @Test
  void adamKeepingSomeRangesOnlyUpdatesThemBitForBit() {
    int n = 1000;
    int[] starts = {3, 130, 517};
    int[] ends = {100, 517, 999};
    java.util.SplittableRandom r = new java.util.SplittableRandom(7);
    float[] init = new float[n];
    for (int i = 0; i < n; i++) {
      init[i] = (float) r.nextGaussian();
    }
    Adam whole = new Adam(1e-2f, n);
    Adam part = new Adam(1e-2f, n);
    float[] pw = init.clone();
    float[] pp = init.clone();
    for (int step = 0; step < 4; step++) {
      float[] g = new float[n];
      for (int i = 0; i < n; i++) {
        g[i] = (float) r.nextGaussian();
      }
      whole.beginStep();
      whole.update(pw, g, 0, n);
      if (step == 1) {
        // Kept from the second step on: the first step's moments carry over.
        part.keepOnly(starts, ends);
      }
      part.beginStep();
      if (step < 1) {
        part.update(pp, g, 0, n);
      } else {
        for (int k = 0; k < starts.length; k++) {
          // In pieces, as a ring's chunks come: one at an odd offset.
          int mid = starts[k] + (ends[k] - starts[k]) / 3;
          part.update(pp, g, mid, ends[k]);
          part.update(pp, g, starts[k], mid);
        }
      }
    }
    assertEquals(97 + 387 + 482, part.momentLength(), "the moments of the kept ranges only");
    float[][] wm = whole.moments();
    float[][] pm = part.wholeMoments();
    for (int k = 0; k < starts.length; k++) {
      for (int i = starts[k]; i < ends[k]; i++) {
        assertEquals(pw[i], pp[i], 0f, "parameter " + i);
        assertEquals(wm[0][i], pm[0][i], 0f, "first moment " + i);
        assertEquals(wm[1][i], pm[1][i], 0f, "second moment " + i);
      }
    }
    assertEquals(0f, pm[0][100], 0f, "outside the kept ranges: zero");
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> part.update(pp, pp, 90, 131));
    assertTrue(e.getMessage().contains("[90, 131)"), e.getMessage());
    IllegalStateException s = assertThrows(IllegalStateException.class, part::state);
    assertTrue(s.getMessage().contains("sharded"), s.getMessage());
    assertThrows(IllegalArgumentException.class, () -> part.keepOnly(new int[] {5, 4}, new int[] {10, 8}));
    part.restoreWhole(wm[0].clone(), wm[1].clone());
    assertEquals(n, part.momentLength());
    assertEquals(4, part.state().steps());
  }
}
