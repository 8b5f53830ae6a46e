package dev.convspark.tensor.optim;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Adam with TensorFlow's defaults and update form (beta1 0.9, beta2 0.999, epsilon 1e-8):
 * <pre>
 *   t  = t + 1
 *   lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
 *   m  = beta1 * m + (1 - beta1) * g
 *   v  = beta2 * v + (1 - beta2) * g^2
 *   p  = p - lr_t * m / (sqrt(v) + epsilon)
 * </pre>
 */
public final class Adam implements Optimizer {

  /** Decay of the first moment. */
  public static final float BETA1 = 0.9f;
  /** Decay of the second moment. */
  public static final float BETA2 = 0.999f;
  /** Added to the root of the second moment. */
  public static final float EPSILON = 1e-8f;

  private final float lr;
  private final float[] m;
  private final float[] v;
  private long steps;
  private float stepSize;
  private float current;
  private LearningRateSchedule schedule = LearningRateSchedule.constant();
  private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;

  /** @param learningRate positive and finite; {@code paramCount} sizes the moment buffers */
  public Adam(float learningRate, int paramCount) {
    checkLearningRate(learningRate);
    this.lr = learningRate;
    this.current = learningRate;
    this.m = new float[paramCount];
    this.v = new float[paramCount];
  }

  static void checkLearningRate(float lr) {
    if (!(lr > 0f) || Float.isInfinite(lr)) {
      throw new IllegalArgumentException("learningRate must be positive and finite but was " + lr);
    }
  }

  @Override
  public String name() {
    return "adam";
  }

  @Override
  public float learningRate() {
    return lr;
  }

  @Override
  public void setSchedule(LearningRateSchedule schedule) {
    this.schedule = schedule;
  }

  @Override
  public float currentLearningRate() {
    return current;
  }

  @Override
  public void beginStep() {
    steps++;
    double rate = lr * schedule.factor(steps);
    current = (float) rate;
    stepSize = (float) (rate * Math.sqrt(1 - Math.pow(BETA2, steps)) / (1 - Math.pow(BETA1, steps)));
  }

  @Override
  public void update(float[] params, float[] grads, int from, int to) {
    float a = stepSize;
    int i = from;
    // The same operations lane by lane as the scalar loop below, so results do not depend on
    // where a range starts.
    for (int bound = from + S.loopBound(to - from); i < bound; i += S.length()) {
      FloatVector g = FloatVector.fromArray(S, grads, i);
      FloatVector mi = FloatVector.fromArray(S, m, i).mul(BETA1).add(g.mul(1 - BETA1));
      FloatVector vi = FloatVector.fromArray(S, v, i).mul(BETA2).add(g.mul(g).mul(1 - BETA2));
      mi.intoArray(m, i);
      vi.intoArray(v, i);
      FloatVector p = FloatVector.fromArray(S, params, i);
      p.sub(mi.mul(a).div(vi.sqrt().add(EPSILON))).intoArray(params, i);
    }
    for (; i < to; i++) {
      float g = grads[i];
      m[i] = BETA1 * m[i] + (1 - BETA1) * g;
      v[i] = BETA2 * v[i] + (1 - BETA2) * (g * g);
      params[i] -= a * m[i] / ((float) Math.sqrt(v[i]) + EPSILON);
    }
  }

  /** The step size of the step begun last: {@code lr_t * sqrt(1 - beta2^t) / (1 - beta1^t)}, {@code lr_t} the scheduled rate. */
  public float stepSize() {
    return stepSize;
  }

  /**
   * The live moment buffers {@code {m, v}}: a backend that keeps the moments elsewhere (a GPU)
   * copies them in here so that {@link #state()} is current.
   */
  public float[][] moments() {
    return new float[][] {m, v};
  }

  @Override
  public long steps() {
    return steps;
  }

  @Override
  public OptimizerState state() {
    return new OptimizerState(name(), lr, steps, new float[][] {m.clone(), v.clone()});
  }

  void restore(OptimizerState s) {
    if (s.moments().length != 2 || s.moments()[0].length != m.length || s.moments()[1].length != v.length) {
      throw new IllegalArgumentException("adam state must hold 2 moment arrays of " + m.length + " floats");
    }
    System.arraycopy(s.moments()[0], 0, m, 0, m.length);
    System.arraycopy(s.moments()[1], 0, v, 0, v.length);
    steps = s.steps();
    stepSize = 0f;
  }
}
