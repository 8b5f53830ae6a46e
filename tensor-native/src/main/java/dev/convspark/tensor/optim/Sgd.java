package dev.convspark.tensor.optim;

/** Plain stochastic gradient descent: {@code p -= lr * g}. */
public final class Sgd implements Optimizer {

  private final float lr;
  private long steps;

  /** @param learningRate positive and finite */
  public Sgd(float learningRate) {
    Adam.checkLearningRate(learningRate);
    this.lr = learningRate;
  }

  @Override
  public String name() {
    return "sgd";
  }

  @Override
  public float learningRate() {
    return lr;
  }

  @Override
  public void step(float[] params, float[] grads) {
    for (int i = 0; i < params.length; i++) {
      params[i] -= lr * grads[i];
    }
    steps++;
  }

  @Override
  public long steps() {
    return steps;
  }

  @Override
  public OptimizerState state() {
    return new OptimizerState(name(), lr, steps, new float[0][]);
  }

  void restore(OptimizerState s) {
    steps = s.steps();
  }
}
