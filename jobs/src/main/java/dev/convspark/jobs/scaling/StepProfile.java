package dev.convspark.jobs.scaling;

import dev.convspark.tensor.backend.CpuBackend;
import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.layers.SoftmaxCrossEntropy;
import dev.convspark.tensor.optim.Optimizer;
import dev.convspark.tensor.spec.ModelSpec;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.locks.LockSupport;

/**
 * One training step of the engine as measured here: when, during the gradient's computation, the
 * backward pass said which part of the gradient array was final (the times an exchange can start
 * sending it), how long the computation took in all, and how long the optimizer's update after
 * the exchange took. {@link #replay} plays it back as a {@link ModelRunner} that waits instead of
 * computing, so that many simulated workers fit on a few cores.
 *
 * @param readyAtNanos  when each event came, from the start of the computation
 * @param readyFrom     the index from which the gradient array was final at that event
 * @param computeNanos  the gradient's computation
 * @param updateNanos   the optimizer's update (Adam) of every parameter
 */
record StepProfile(int batch, int threads, int paramCount, long[] readyAtNanos, int[] readyFrom, long computeNanos,
                   long updateNanos) {

  /** The step with the median computation of {@code steps} timed after {@code warmup}, deep-mnist at {@code batch}. */
  static StepProfile measure(int batch, int threads, int warmup, int steps) {
    ModelSpec spec = ModelSpec.parse(ModelSpec.DEEP_MNIST);
    SplittableRandom g = new SplittableRandom(7);
    float[] x = new float[batch * spec.inputShape().size()];
    for (int i = 0; i < x.length; i++) {
      x[i] = (float) g.nextDouble();
    }
    int[] y = new int[batch];
    for (int i = 0; i < batch; i++) {
      y[i] = g.nextInt(10);
    }
    List<StepProfile> runs = new ArrayList<>();
    try (CpuBackend cpu = CpuBackend.create(threads); ModelRunner r = cpu.open(spec)) {
      r.initialize(1);
      r.setKeepProb(0.5f);
      Optimizer adam = Optimizer.create("adam", 1e-4f, r.paramCount());
      for (int s = 0; s < warmup + steps; s++) {
        List<long[]> events = new ArrayList<>();
        long t0 = System.nanoTime();
        r.setGradientListener(from -> events.add(new long[] {System.nanoTime() - t0, from}));
        r.computeGradients(x, y, batch, 1f / batch, s);
        long computed = System.nanoTime();
        r.setGradientListener(null);
        r.applyGradients(adam);
        long updated = System.nanoTime();
        if (s >= warmup) {
          runs.add(new StepProfile(batch, threads, r.paramCount(), events.stream().mapToLong(e -> e[0]).toArray(),
              events.stream().mapToInt(e -> (int) e[1]).toArray(), computed - t0, updated - computed));
        }
      }
    }
    runs.sort((a, b) -> Long.compare(a.computeNanos, b.computeNanos));
    StepProfile median = runs.get(runs.size() / 2);
    long[] updates = runs.stream().mapToLong(StepProfile::updateNanos).sorted().toArray();
    return new StepProfile(batch, threads, median.paramCount, median.readyAtNanos, median.readyFrom,
        median.computeNanos, updates[updates.length / 2]);
  }

  /** When the part of the gradient from {@code index} on was final, as a fraction of the computation. */
  double readyFraction(int index) {
    for (int i = 0; i < readyFrom.length; i++) {
      if (readyFrom[i] <= index) {
        return (double) readyAtNanos[i] / computeNanos;
      }
    }
    return 1;
  }

  /** This step played back with every wait {@code scale} times as long. */
  ModelRunner replay(double scale) {
    return new Replay(this, scale);
  }

  /**
   * An optimizer that waits, for each range it updates, its share of the measured update, times
   * {@code scale}: so a worker that updates 1/N of the parameters (a sharded update) waits 1/N.
   */
  Optimizer replayOptimizer(double scale) {
    return new Optimizer() {
      private long steps;

      @Override
      public String name() {
        return "replay";
      }

      @Override
      public float learningRate() {
        return 0;
      }

      @Override
      public void setSchedule(dev.convspark.tensor.optim.LearningRateSchedule schedule) {
      }

      @Override
      public float currentLearningRate() {
        return 0;
      }

      @Override
      public void beginStep() {
        steps++;
      }

      @Override
      public void update(float[] params, float[] grads, int from, int to) {
        sleepUntil(System.nanoTime() + (long) ((double) (to - from) / paramCount * updateNanos * scale));
      }

      @Override
      public long steps() {
        return steps;
      }

      @Override
      public dev.convspark.tensor.optim.OptimizerState state() {
        throw new UnsupportedOperationException("a replayed update has no state");
      }
    };
  }

  private static void sleepUntil(long deadline) {
    for (long left = deadline - System.nanoTime(); left > 0; left = deadline - System.nanoTime()) {
      LockSupport.parkNanos(left);
    }
  }

  /** A runner that waits through the profile and tells its listener what became final when. */
  private static final class Replay implements ModelRunner {
    private final StepProfile p;
    private final double scale;
    private final float[] grads;
    private final float[] params;
    private java.util.function.IntConsumer listener;

    Replay(StepProfile p, double scale) {
      this.p = p;
      this.scale = scale;
      this.grads = new float[p.paramCount];
      this.params = new float[p.paramCount];
      SplittableRandom g = new SplittableRandom(3);
      for (int i = 0; i < grads.length; i++) {
        grads[i] = (float) g.nextGaussian();
      }
    }

    @Override
    public SoftmaxCrossEntropy.Result computeGradients(float[] images, int[] labels, float[] weights, int n,
                                                       float lossScale, long seed, long[] firsts, int[] lengths) {
      long t0 = System.nanoTime();
      for (int i = 0; i < p.readyAtNanos.length; i++) {
        sleepUntil(t0 + (long) (p.readyAtNanos[i] * scale));
        if (listener != null) {
          listener.accept(p.readyFrom[i]);
        }
      }
      sleepUntil(t0 + (long) (p.computeNanos * scale));
      return new SoftmaxCrossEntropy.Result(2.3 * n, n / 10, n);
    }

    @Override
    public void applyGradients(Optimizer optimizer) {
      optimizer.beginStep();
      optimizer.update(params, grads, 0, params.length);
    }

    @Override
    public float[] hostParameters() {
      return params;
    }

    @Override
    public float[] hostGradients() {
      return grads;
    }

    @Override
    public void setGradientListener(java.util.function.IntConsumer listener) {
      this.listener = listener;
    }

    @Override
    public void scaleGradients(float factor) {
      // Not timed: the profile's computation divided by the batch already (its lossScale).
    }

    @Override
    public ModelSpec spec() {
      return ModelSpec.parse(ModelSpec.DEEP_MNIST);
    }

    @Override
    public int paramCount() {
      return p.paramCount;
    }

    @Override
    public void initialize(long seed) {
    }

    @Override
    public void copyParametersTo(float[] dst) {
      Arrays.fill(dst, 0f);
    }

    @Override
    public void copyParametersFrom(float[] src) {
    }

    @Override
    public void copyGradientsTo(float[] dst) {
      System.arraycopy(grads, 0, dst, 0, grads.length);
    }

    @Override
    public void copyGradientsFrom(float[] src) {
      System.arraycopy(src, 0, grads, 0, grads.length);
    }

    @Override
    public void setKeepProb(float keepProb) {
    }

    @Override
    public void predictLogits(float[] images, int n, float[] logits) {
      throw new UnsupportedOperationException("a replayed training step does no inference");
    }

    @Override
    public void close() {
    }
  }
}
