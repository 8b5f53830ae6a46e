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
  public void beginStep() {
    steps++;
  }

  @Override
  public void update(float[] params, float[] grads, int from, int to) {
    for (int i = from; i < to; i++) {
      params[i] -= lr * grads[i];
    }
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
