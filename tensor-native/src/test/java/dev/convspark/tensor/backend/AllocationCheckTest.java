package dev.convspark.tensor.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.tensor.optim.Optimizer;
import dev.convspark.tensor.spec.ModelSpec;
import org.junit.jupiter.api.Test;

/**
 * The CPU backend counts its kernels' allocations once they are compiled, to tell boxed vector
 * kernels. Maven runs this again in a JVM with {@code -XX:PerMethodTrapLimit=10} (its
 * {@code trap-limit} execution), where a kernel near C2's trap limit compiles with boxed vectors
 * and fails the first test.
 */
class AllocationCheckTest {

  @Test
  void compiledKernelsAllocateFarLessThanTheThresholdAndTheCountIsTakenOnce() {
    ModelSpec spec = ModelSpec.parse(ModelSpec.DEEP_MNIST);
    int n = 8;
    float[] x = new float[n * spec.inputShape().size()];
    for (int i = 0; i < x.length; i++) {
      x[i] = (i % 17) / 17f;
    }
    int[] y = new int[n];
    for (int i = 0; i < n; i++) {
      y[i] = i % 10;
    }
    try (CpuBackend cpu = CpuBackend.create(2); ModelRunner r = cpu.open(spec)) {
      r.initialize(1);
      Optimizer adam = Optimizer.create("adam", 1e-4f, r.paramCount());
      int counted = CpuBackend.ALLOCATION_CHECK_FROM + CpuBackend.ALLOCATION_CHECK_STEPS;
      for (int s = 0; s < counted; s++) {
        assertEquals(-1, CpuBackend.allocatedBytesPerStep(r), "counted before step " + counted);
        r.computeGradients(x, y, n, 1f / n, s);
        r.applyGradients(adam);
      }
      long perStep = CpuBackend.allocatedBytesPerStep(r);
      System.out.println("deep-mnist at batch " + n + " on 2 threads: " + perStep + " bytes allocated a step");
      assertTrue(perStep >= 0 && perStep < CpuBackend.BOXED_BYTES_PER_STEP, perStep + " bytes a step");
      r.computeGradients(x, y, n, 1f / n, counted);
      assertEquals(perStep, CpuBackend.allocatedBytesPerStep(r), "counted once");
    }
  }

  @Test
  void theWarningSaysWhatHappenedAndWhatToDo() {
    String w = CpuBackend.boxedWarning(300L << 20);
    assertTrue(w.startsWith("the CPU kernels allocated 300.0 MB a training step where about 30 KB are usual"), w);
    assertTrue(w.contains("restart it"), w);
  }
}
