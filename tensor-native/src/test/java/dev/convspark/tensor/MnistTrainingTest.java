package dev.convspark.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.datasets.mnist.MnistArrays;
import dev.convspark.tensor.backend.CpuBackend;
import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.optim.Optimizer;
import dev.convspark.tensor.spec.ModelSpec;
import dev.convspark.tensor.train.BatchSampler;
import dev.convspark.tensor.train.Trainer;
import java.io.IOException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The tutorial's two models trained on the real MNIST files (fetched by 'bin/convspark test'). */
class MnistTrainingTest {

  private static MnistArrays train;
  private static MnistArrays test;
  private static CpuBackend backend;

  @BeforeAll
  static void load() throws IOException {
    train = MnistArrays.load(MnistArrays.defaultDir(), true);
    test = MnistArrays.load(MnistArrays.defaultDir(), false);
    backend = CpuBackend.create();
  }

  @AfterAll
  static void stop() {
    backend.close();
  }

  /** Trains and returns {test accuracy, final parameters}. */
  private static Object[] run(String spec, String optimizer, float lr, int steps, float keepProb, boolean meanLoss, long seed) {
    try (ModelRunner runner = backend.open(ModelSpec.parse(spec))) {
      runner.initialize(seed);
      Trainer trainer = new Trainer(runner, Optimizer.create(optimizer, lr, runner.paramCount()), keepProb, seed);
      int batch = 50;
      BatchSampler sampler = new BatchSampler(train.count(), seed);
      for (int s = 0; s < steps; s++) {
        trainer.step(sampler, train.images(), train.labels(), batch, meanLoss ? 1f / batch : 1f);
      }
      double acc = Trainer.accuracy(runner, test.images(), test.labels(), test.count(), 1000);
      float[] params = new float[runner.paramCount()];
      runner.copyParametersTo(params);
      return new Object[] {acc, params};
    }
  }

  @Test
  void softmaxRegressionReaches91PercentAndIsRepeatable() {
    Object[] a = run("softmax-regression", "sgd", 0.01f, 1000, 1f, false, 1);
    Object[] b = run("softmax-regression", "sgd", 0.01f, 1000, 1f, false, 1);
    double acc = (double) a[0];
    assertTrue(acc >= 0.91, "softmax regression test accuracy " + acc);
    assertEquals(acc, (double) b[0]);
    assertArrayEquals((float[]) a[1], (float[]) b[1], "same seed, same weights");
  }

  @Test
  void deepMnistReaches97PercentAfter1500Steps() {
    Object[] r = run("deep-mnist", "adam", 1e-4f, 1500, 0.5f, true, 1);
    double acc = (double) r[0];
    System.out.printf("deep-mnist after 1500 steps: test accuracy %.4f%n", acc);
    assertTrue(acc >= 0.97, "deep-mnist test accuracy after 1500 steps " + acc);
  }

  @Test
  void deepMnistTrainingIsRepeatableWithDropout() {
    Object[] a = run("deep-mnist", "adam", 1e-4f, 5, 0.5f, true, 9);
    Object[] b = run("deep-mnist", "adam", 1e-4f, 5, 0.5f, true, 9);
    assertArrayEquals((float[]) a[1], (float[]) b[1], "same seed, same weights");
  }
}
