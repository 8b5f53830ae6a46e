package dev.convspark.ml.exchange;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.convspark.tensor.backend.CpuBackend;
import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.layers.SoftmaxCrossEntropy;
import dev.convspark.tensor.optim.Optimizer;
import dev.convspark.tensor.spec.ModelSpec;

/**
 * A CPU runner that keeps its parameters and gradients to itself, as a GPU's runner does: no heap
 * arrays for the exchange to read, so the exchange takes the steps of runners on GPUs
 * ({@link OffHeapStep}); without {@code factors}, it offers no factored gradient either. The
 * arithmetic is the CPU backend's own.
 */
final class OffHeapRunner implements ModelRunner {
  private final ModelRunner inner;
  private final boolean factors;

  OffHeapRunner(ModelRunner inner, boolean factors) {
    this.inner = inner;
    this.factors = factors;
  }

  /**
   * Three Adam steps of worker {@code rank} through {@code ex}, as a barrier worker on a GPU takes
   * them: {@code counts[rank]} samples of its batch a step (none: it adds zeros); returns its
   * parameters.
   */
  static float[] steps(GradientExchange ex, int rank, int[] counts, boolean factors, String spec) throws Exception {
    return steps(ex, rank, counts, factors, spec, true);
  }

  /**
   * As above; not {@code offHeap}: the worker's runner is the CPU's as it is, its gradients in the
   * heap (a run with {@code device=auto} where this executor has no GPU).
   */
  static float[] steps(GradientExchange ex, int rank, int[] counts, boolean factors, String spec, boolean offHeap)
      throws Exception {
    int n = counts[rank];
    int total = java.util.Arrays.stream(counts).sum();
    try (CpuBackend cpu = CpuBackend.create(1); ModelRunner r = offHeap
        ? new OffHeapRunner(cpu.open(ModelSpec.parse(spec)), factors) : cpu.open(ModelSpec.parse(spec))) {
      r.initialize(3);
      Optimizer opt = Optimizer.create("adam", 1e-2f, r.paramCount());
      // As StepLoop asks, before the first step.
      ex.shardUpdates(r.hostGradients() != null);
      ex.offHeapSteps(r.hostGradients() == null);
      float[] scratch = new float[r.paramCount()];
      for (int step = 0; step < 3; step++) {
        ex.beginStep(r, opt, n);
        double loss = 0;
        if (n == 0) {
          r.copyGradientsFrom(new float[r.paramCount()]);
        } else {
          int size = r.spec().inputShape().size();
          java.util.Random g = new java.util.Random(31L * rank + step);
          float[] x = new float[n * size];
          int[] y = new int[n];
          for (int i = 0; i < x.length; i++) {
            x[i] = (float) g.nextGaussian();
          }
          for (int i = 0; i < n; i++) {
            y[i] = (i + rank + step) % 10;
          }
          loss = r.computeGradients(x, y, n, 1f, step).lossSum();
        }
        ex.step(r, opt, scratch, new double[] {loss, n}, sums -> assertEquals(total, sums[1], 0.0));
      }
      float[] p = new float[r.paramCount()];
      r.copyParametersTo(p);
      return p;
    }
  }

  @Override
  public ModelSpec spec() {
    return inner.spec();
  }

  @Override
  public int paramCount() {
    return inner.paramCount();
  }

  @Override
  public void initialize(long seed) {
    inner.initialize(seed);
  }

  @Override
  public void copyParametersTo(float[] dst) {
    inner.copyParametersTo(dst);
  }

  @Override
  public void copyParametersFrom(float[] src) {
    inner.copyParametersFrom(src);
  }

  @Override
  public void copyGradientsTo(float[] dst) {
    inner.copyGradientsTo(dst);
  }

  @Override
  public void copyGradientsFrom(float[] src) {
    inner.copyGradientsFrom(src);
  }

  @Override
  public DenseWeights factoredDense() {
    return factors ? inner.factoredDense() : null;
  }

  @Override
  public void copyFactoredGradientsTo(float[] dst, int n, int xAt, int dyAt) {
    inner.copyFactoredGradientsTo(dst, n, xAt, dyAt);
  }

  @Override
  public void copyFactoredGradientsFrom(float[] src, int samples, int xAt, int dyAt) {
    inner.copyFactoredGradientsFrom(src, samples, xAt, dyAt);
  }

  @Override
  public void scaleGradients(float factor) {
    inner.scaleGradients(factor);
  }

  @Override
  public void setKeepProb(float keepProb) {
    inner.setKeepProb(keepProb);
  }

  @Override
  public SoftmaxCrossEntropy.Result computeGradients(float[] images, int[] labels, float[] weights, int n,
                                                     float lossScale, long seed, long[] firsts, int[] lengths) {
    return inner.computeGradients(images, labels, weights, n, lossScale, seed, firsts, lengths);
  }

  @Override
  public void applyGradients(Optimizer optimizer) {
    inner.applyGradients(optimizer);
  }

  @Override
  public void predictLogits(float[] images, int n, float[] logits) {
    inner.predictLogits(images, n, logits);
  }

  @Override
  public void close() {
    inner.close();
  }
}
