package dev.convspark.tensor.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.tensor.layers.SoftmaxCrossEntropy;
import dev.convspark.tensor.optim.Optimizer;
import dev.convspark.tensor.spec.ModelSpec;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The GPU backend against the CPU reference on random inputs: every layer's forward and backward
 * (through the gradients it produces) and 20 training steps, relative error under 1e-4. Skipped,
 * saying so, where no GPU can be used; {@code gpu-check.sh} runs it on a GPU machine.
 */
class CudaParityTest {

  private static CudaBackend gpu;
  private static CpuBackend cpu;
  private static String noGpu;

  @BeforeAll
  static void open() {
    try {
      gpu = CudaBackend.create(0);
    } catch (IllegalStateException e) {
      noGpu = "no usable GPU here, GPU parity not checked: " + e.getMessage();
    }
    cpu = CpuBackend.reference();
  }

  @AfterAll
  static void close() {
    if (gpu != null) {
      gpu.close();
    }
  }

  /** Largest |a - b| over the largest |b| (1 when b is all zero). */
  static double relativeError(float[] a, float[] b) {
    double diff = 0;
    double scale = 0;
    for (int i = 0; i < a.length; i++) {
      diff = Math.max(diff, Math.abs(a[i] - b[i]));
      scale = Math.max(scale, Math.abs(b[i]));
    }
    return diff / Math.max(scale, 1e-30);
  }

  private static float[] random(int n, long seed) {
    Random r = new Random(seed);
    float[] x = new float[n];
    for (int i = 0; i < n; i++) {
      x[i] = (float) r.nextGaussian();
    }
    return x;
  }

  private static void compareGradients(String specText, int n, float keep) {
    ModelSpec spec = ModelSpec.parse(specText);
    try (ModelRunner a = gpu.open(spec); ModelRunner b = cpu.open(spec)) {
      a.initialize(7);
      b.initialize(7);
      a.setKeepProb(keep);
      b.setKeepProb(keep);
      float[] x = random(n * spec.inputShape().size(), 3);
      int[] y = new int[n];
      for (int i = 0; i < n; i++) {
        y[i] = i % spec.numClasses();
      }
      SoftmaxCrossEntropy.Result ra = a.computeGradients(x, y, n, 1f / n, 99);
      SoftmaxCrossEntropy.Result rb = b.computeGradients(x, y, n, 1f / n, 99);
      assertEquals(rb.lossSum(), ra.lossSum(), 1e-4 * Math.abs(rb.lossSum()), specText + ": loss");
      float[] ga = new float[a.paramCount()];
      float[] gb = new float[b.paramCount()];
      a.copyGradientsTo(ga);
      b.copyGradientsTo(gb);
      double err = relativeError(ga, gb);
      assertTrue(err < 1e-4, specText + ": gradients differ by " + err + " (relative)");
      float[] la = new float[n * spec.numClasses()];
      float[] lb = new float[n * spec.numClasses()];
      a.predictLogits(x, n, la);
      b.predictLogits(x, n, lb);
      err = relativeError(la, lb);
      assertTrue(err < 1e-4, specText + ": logits differ by " + err + " (relative)");
    }
  }

  @Test
  void everyLayerForwardAndBackwardMatchesTheCpu() {
    Assumptions.assumeTrue(gpu != null, noGpu);
    // Each layer behind a convolution, whose weight gradient carries the layer's backward pass.
    compareGradients("in12x12x3-conv3x3x8-dense10", 7, 1f);
    compareGradients("in12x12x3-conv5x5x8:valid-dense10", 7, 1f);
    compareGradients("in12x12x3-conv3x3x8-relu-dense10", 7, 1f);
    compareGradients("in12x12x3-conv3x3x8:s2-dense10", 7, 1f);
    compareGradients("in12x12x3-conv3x3x8-pool2-dense10", 7, 1f);
    compareGradients("in13x13x3-conv3x3x8-pool3-dense10", 5, 1f);
    compareGradients("in12x12x3-conv3x3x8-dropout-dense10", 7, 0.5f);
    compareGradients("in100-dense64-relu-dense10", 9, 1f);
    compareGradients(ModelSpec.DEEP_MNIST, 50, 0.5f);
  }

  @Test
  void twentyTrainingStepsMatchTheCpu() {
    Assumptions.assumeTrue(gpu != null, noGpu);
    for (String opt : new String[] {"adam", "sgd"}) {
      ModelSpec spec = ModelSpec.parse(ModelSpec.DEEP_MNIST);
      try (ModelRunner a = gpu.open(spec); ModelRunner b = cpu.open(spec)) {
        a.initialize(1);
        b.initialize(1);
        a.setKeepProb(0.5f);
        b.setKeepProb(0.5f);
        Optimizer oa = Optimizer.create(opt, opt.equals("adam") ? 1e-4f : 0.01f, a.paramCount());
        Optimizer ob = Optimizer.create(opt, opt.equals("adam") ? 1e-4f : 0.01f, b.paramCount());
        for (int step = 0; step < 20; step++) {
          float[] x = random(50 * 784, step);
          int[] y = new int[50];
          for (int i = 0; i < 50; i++) {
            y[i] = (i * 7 + step) % 10;
          }
          a.computeGradients(x, y, 50, 1f / 50, step);
          b.computeGradients(x, y, 50, 1f / 50, step);
          a.applyGradients(oa);
          b.applyGradients(ob);
        }
        float[] pa = new float[a.paramCount()];
        float[] pb = new float[b.paramCount()];
        a.copyParametersTo(pa);
        b.copyParametersTo(pb);
        double err = relativeError(pa, pb);
        assertTrue(err < 1e-4, opt + ": weights after 20 steps differ by " + err + " (relative)");
        a.syncOptimizer(oa);
        assertEquals(ob.state().steps(), oa.state().steps());
      }
    }
  }
}
