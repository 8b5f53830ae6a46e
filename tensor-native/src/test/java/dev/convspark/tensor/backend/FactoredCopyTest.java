package dev.convspark.tensor.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.tensor.spec.ModelSpec;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * A gradient copied out and in with its largest dense layer's weight gradient as factors
 * ({@link ModelRunner#factoredDense}), as the exchange between GPUs sums it at small batches: on
 * the CPU backend here (the GPU's runs in {@link CudaEmulationTest}'s parity checks and on a GPU
 * in {@code gpu-check.sh}), against the reference kernels' gradient of the whole batch.
 */
class FactoredCopyTest {

  @Test
  void twoReplicasFactorsSumToTheGradientOfTheWholeBatch() {
    try (CpuBackend fast = CpuBackend.create(2); CpuBackend reference = CpuBackend.reference(1)) {
      List<GpuCheck.Check> checks = GpuCheck.factoredParity(fast, reference);
      assertEquals(2, checks.size());
      for (GpuCheck.Check c : checks) {
        System.out.println(c.what() + ": " + c.error());
        assertTrue(c.ok(), c.what() + ": " + c.error());
      }
    }
  }

  /** deep-mnist's first dense layer: what travels at a batch of 50 against its weight gradient. */
  @Test
  void deepMnistsFactoredGradientAtBatch50IsATwelfthOfTheGradient() {
    try (CpuBackend cpu = CpuBackend.create(1); ModelRunner r = cpu.open(ModelSpec.parse(ModelSpec.DEEP_MNIST))) {
      ModelRunner.DenseWeights d = r.factoredDense();
      assertEquals(3136, d.inputs());
      assertEquals(1024, d.units());
      long factored = ModelRunner.factoredLength(r.paramCount(), d, 50);
      assertEquals(r.paramCount() - 3136 * 1024 + 50 * (3136 + 1024), factored);
      assertTrue(factored * 12 < r.paramCount(), factored + " floats against " + r.paramCount());
    }
  }

  @Test
  void factorsThatAreGoneOrDoNotFitAreRefusedSayingSo() {
    ModelSpec spec = ModelSpec.parse(GpuCheck.FACTORED_SPEC);
    try (CpuBackend cpu = CpuBackend.create(1); ModelRunner r = cpu.open(spec)) {
      r.initialize(1);
      ModelRunner.DenseWeights d = r.factoredDense();
      int n = 4;
      int rest = r.paramCount() - d.inputs() * d.units();
      float[] a = new float[(int) ModelRunner.factoredLength(r.paramCount(), d, n)];
      float[] x = GpuCheck.random(n * spec.inputShape().size(), 2);
      Exception none = assertThrows(IllegalStateException.class, () -> r.copyFactoredGradientsTo(a, n, rest,
          rest + n * d.inputs()));
      assertTrue(none.getMessage().contains("no training step"), none.getMessage());
      r.computeGradients(x, new int[n], n, 1f, 1);
      Exception other = assertThrows(IllegalStateException.class, () -> r.copyFactoredGradientsTo(a, 3, rest,
          rest + 3 * d.inputs()));
      assertEquals("copyFactoredGradientsTo: the last step had 4 samples, not 3", other.getMessage());
      Exception small = assertThrows(IllegalArgumentException.class, () -> r.copyFactoredGradientsTo(
          new float[a.length - 1], n, rest, rest + n * d.inputs()));
      assertTrue(small.getMessage().contains("do not fit an array of " + (a.length - 1) + " floats"), small.getMessage());
      Exception over = assertThrows(IllegalArgumentException.class, () -> r.copyFactoredGradientsFrom(a, n, rest - 1,
          rest + n * d.inputs()));
      assertTrue(over.getMessage().startsWith("copyFactoredGradientsFrom: 4 samples' factors of the dense layer of "
          + d.inputs() + " x " + d.units()), over.getMessage());
      r.copyFactoredGradientsTo(a, n, rest, rest + n * d.inputs());
      r.predictLogits(x, n, new float[n * spec.numClasses()]);
      Exception gone = assertThrows(IllegalStateException.class, () -> r.copyFactoredGradientsTo(a, n, rest,
          rest + n * d.inputs()));
      assertTrue(gone.getMessage().contains("inference overwrites the factors"), gone.getMessage());
    }
  }
}
