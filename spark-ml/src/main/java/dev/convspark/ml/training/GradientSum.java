package dev.convspark.ml.training;

import java.io.Serializable;

/** The sum of per-partition gradients of one step, with the loss and accuracy counts behind them. */
final class GradientSum implements Serializable {
  private static final long serialVersionUID = 1L;

  final float[] grads;
  double lossSum;
  long correct;
  long count;

  GradientSum(float[] grads, double lossSum, long correct, long count) {
    this.grads = grads;
    this.lossSum = lossSum;
    this.correct = correct;
    this.count = count;
  }

  /** Adds {@code other} into this one (exact float sums, in a fixed tree order). */
  GradientSum add(GradientSum other) {
    if (other.grads != null) {
      if (grads == null) {
        return other.add(this);
      }
      for (int i = 0; i < grads.length; i++) {
        grads[i] += other.grads[i];
      }
    }
    lossSum += other.lossSum;
    correct += other.correct;
    count += other.count;
    return this;
  }
}
