package dev.convspark.tensor.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.tensor.optim.Optimizer;
import dev.convspark.tensor.spec.ModelSpec;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The CPU runner's per-layer clock (what {@code bench profile} reads) and that it changes nothing. */
class StepClockTest {

  private static final String SPEC = "in12x12x1-conv3x3x4-relu-pool2-dense16-relu-dropout-dense3";

  @Test
  void theClockTimesEveryPartOfAStepAndLeavesTheResultAlone() {
    SplittableRandom rnd = new SplittableRandom(3);
    int n = 8;
    float[] x = new float[n * 144];
    int[] y = new int[n];
    for (int i = 0; i < x.length; i++) {
      x[i] = (float) rnd.nextDouble();
    }
    for (int i = 0; i < n; i++) {
      y[i] = rnd.nextInt(3);
    }
    float[][] weights = new float[2][];
    long[] clock = null;
    List<String> names = null;
    for (int timed = 0; timed < 2; timed++) {
      try (CpuBackend cpu = CpuBackend.create(2); ModelRunner r = cpu.open(ModelSpec.parse(SPEC))) {
        r.initialize(7);
        names = r.layerNames();
        if (timed == 1) {
          clock = new long[2 * names.size() + 2];
          r.setClock(clock);
        }
        Optimizer adam = Optimizer.create("adam", 1e-3f, r.paramCount());
        long t0 = System.nanoTime();
        for (int s = 0; s < 3; s++) {
          r.computeGradients(x, y, n, 1f / n, s, new long[] {0}, new int[] {n});
          r.applyGradients(adam);
        }
        long wall = System.nanoTime() - t0;
        weights[timed] = new float[r.paramCount()];
        r.copyParametersTo(weights[timed]);
        if (timed == 1) {
          long sum = java.util.Arrays.stream(clock).sum();
          assertTrue(sum <= wall, "the parts (" + sum + " ns) fit in the steps (" + wall + " ns)");
        }
      }
    }
    assertEquals(List.of("conv1", "relu1", "pool1", "flatten2", "dense1", "relu3", "dropout4", "dense2"), names);
    int layers = names.size();
    for (int i : new int[] {0, 2, 4, 7}) {
      assertTrue(clock[i] > 0 && clock[layers + i] > 0, names.get(i) + " timed forward and backward");
    }
    assertTrue(clock[2 * layers] > 0, "the loss timed");
    assertTrue(clock[2 * layers + 1] > 0, "the update timed");
    assertTrue(java.util.Arrays.equals(weights[0], weights[1]), "timing changes no weight");
    try (CpuBackend cpu = CpuBackend.create(1); ModelRunner r = cpu.open(ModelSpec.parse(SPEC))) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> r.setClock(new long[3]));
      assertTrue(e.getMessage().contains("needs 18 entries"), e.getMessage());
    }
  }
}
