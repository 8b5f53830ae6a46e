package dev.convspark.ml;

import java.io.Serializable;

/**
 * What training recorded, in MLlib's style: the mean loss of every step's global batch (as
 * {@code objectiveHistory}) and its training accuracy.
 */
public final class CnnTrainingSummary implements Serializable {
  private static final long serialVersionUID = 1L;

  private final double[] objectiveHistory;
  private final double[] accuracyHistory;

  CnnTrainingSummary(double[] objectiveHistory, double[] accuracyHistory) {
    this.objectiveHistory = objectiveHistory;
    this.accuracyHistory = accuracyHistory;
  }

  /** Mean cross-entropy of each step's global batch, step 1 first. */
  public double[] objectiveHistory() {
    return objectiveHistory.clone();
  }

  /** Fraction of each step's global batch the model classified right before the update. */
  public double[] accuracyHistory() {
    return accuracyHistory.clone();
  }

  /** Number of steps taken. */
  public int totalIterations() {
    return objectiveHistory.length;
  }
}
