package dev.convspark.tensor.backend;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The GPU backend against the CPU reference on random inputs ({@link GpuCheck}'s checks): every
 * layer's forward and backward and 20 training steps, relative error under 1e-4. Skipped, saying
 * why, where no GPU can be used; {@code gpu-check.sh} runs the same checks on a GPU machine.
 */
class CudaParityTest {

  private static CudaBackend gpu;
  private static String noGpu;

  @BeforeAll
  static void open() {
    try {
      gpu = CudaBackend.create(0);
    } catch (IllegalStateException e) {
      noGpu = "no usable GPU here, GPU parity not checked: " + e.getMessage();
      System.err.println("CudaParityTest skipped: " + noGpu);
    }
  }

  @AfterAll
  static void close() {
    if (gpu != null) {
      gpu.close();
    }
  }

  @Test
  void everyLayerForwardAndBackwardMatchesTheCpu() {
    Assumptions.assumeTrue(gpu != null, noGpu);
    try (CpuBackend cpu = CpuBackend.reference()) {
      for (GpuCheck.Parity p : GpuCheck.PARITY) {
        for (GpuCheck.Check c : GpuCheck.layerParity(gpu, cpu, p)) {
          assertTrue(c.ok(), c.what() + " differs by " + c.error() + " (relative)");
        }
      }
    }
  }

  @Test
  void twentyTrainingStepsMatchTheCpu() {
    Assumptions.assumeTrue(gpu != null, noGpu);
    try (CpuBackend cpu = CpuBackend.reference()) {
      for (String opt : new String[] {"adam", "sgd"}) {
        GpuCheck.Check o = GpuCheck.optimizerParity(gpu, cpu, opt);
        assertTrue(o.ok(), o.what() + " differs by " + o.error() + " (relative)");
        for (GpuCheck.Check c : GpuCheck.networkParity(gpu, cpu, opt)) {
          assertTrue(c.ok(), c.what() + " differs by " + c.error() + " (relative)");
        }
      }
    }
  }
}
