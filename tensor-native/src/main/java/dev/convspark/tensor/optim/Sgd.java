package dev.convspark.tensor.optim;

/** Plain stochastic gradient descent: {@code p -= lr * g}. */
public final class Sgd implements Optimizer {

  private final float lr;
  private long steps;
  private float current;
  private LearningRateSchedule schedule = LearningRateSchedule.constant();

  /** @param learningRate positive and finite */
  public Sgd(float learningRate) {
    Adam.checkLearningRate(learningRate);
    this.lr = learningRate;
    this.current = learningRate;
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
    current = (float) (lr * schedule.factor(steps));
  }

  @Override
  public void update(float[] params, float[] grads, int from, int to) {
    float rate = current;
    for (int i = from; i < to; i++) {
      params[i] -= rate * grads[i];
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
