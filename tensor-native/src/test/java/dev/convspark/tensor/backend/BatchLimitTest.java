package dev.convspark.tensor.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.convspark.tensor.spec.ModelSpec;
import org.junit.jupiter.api.Test;

/**
 * A batch larger than the CPU backend's arrays hold fails saying so (the GPU's counterpart, a
 * tensor past its kernels' 32-bit indices: {@code CudaEmulationTest}).
 */
class BatchLimitTest {

  /**
   * A training batch whose largest layer output passes what a Java array holds: 700 samples of
   * 3,211,264 values through a 4,096-filter convolution. Refused before anything is allocated,
   * naming the layer and what to change; the product in {@code int} had wrapped to a negative size.
   * (Inference goes 256 samples at a time.)
   */
  @Test
  void aBatchPastWhatAnArrayHoldsIsRefusedNamingTheLayer() {
    ModelSpec spec = ModelSpec.parse("in28x28x1-conv3x3x4096-pool2-dense10");
    try (CpuBackend cpu = CpuBackend.create(1); ModelRunner r = cpu.open(spec)) {
      r.initialize(3);
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> r.computeGradients(new float[700 * 784], new int[700], 700, 1f / 700, 0));
      assertEquals("a batch of 700 samples through conv1 (3,211,264 values a sample) is 2,247,884,800 values, more than"
          + " a Java array holds (2,147,483,639): fewer samples at a time (a smaller batchSize, or more partitions to"
          + " share it)", e.getMessage());
    }
  }
}
