package dev.convspark.tensor.optim;

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

  /** @param learningRate positive and finite; {@code paramCount} sizes the moment buffers */
  public Adam(float learningRate, int paramCount) {
    checkLearningRate(learningRate);
    this.lr = learningRate;
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
  public void step(float[] params, float[] grads) {
    steps++;
    double lrT = lr * Math.sqrt(1 - Math.pow(BETA2, steps)) / (1 - Math.pow(BETA1, steps));
    float a = (float) lrT;
    for (int i = 0; i < params.length; i++) {
      float g = grads[i];
      m[i] = BETA1 * m[i] + (1 - BETA1) * g;
      v[i] = BETA2 * v[i] + (1 - BETA2) * g * g;
      params[i] -= a * m[i] / ((float) Math.sqrt(v[i]) + EPSILON);
    }
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
  }
}
