package dev.convspark.ml;

import dev.convspark.ml.training.Validation;
import java.io.Serializable;

/**
 * What training recorded, in MLlib's style: the mean loss of every step's global batch (as
 * {@code objectiveHistory}) and its training accuracy; with {@code validationIndicatorCol}, the
 * validation rows' mean loss and accuracy at every evaluation, the best one, and whether early
 * stopping ended the fit.
 */
public final class CnnTrainingSummary implements Serializable {
  private static final long serialVersionUID = 1L;

  private final double[] objectiveHistory;
  private final double[] accuracyHistory;
  private final double wallSeconds;
  private final double stepSeconds;
  private final long imagesSeen;
  private final int numWorkers;
  private final String syncMode;
  private final int resumedFromStep;
  private final Validation.History validation;
  private final int weightsIteration;
  private final double exchangeSeconds;

  CnnTrainingSummary(double[] objectiveHistory, double[] accuracyHistory, double wallSeconds, double stepSeconds,
                     long imagesSeen, int numWorkers, String syncMode, int resumedFromStep,
                     Validation.History validation, int weightsIteration, double exchangeSeconds) {
    this.exchangeSeconds = exchangeSeconds;
    this.validation = validation != null ? validation : new Validation.History(new int[0], new double[0],
        new double[0], 0, false);
    this.weightsIteration = weightsIteration;
    this.stepSeconds = stepSeconds;
    this.resumedFromStep = resumedFromStep;
    this.objectiveHistory = objectiveHistory;
    this.accuracyHistory = accuracyHistory;
    this.wallSeconds = wallSeconds;
    this.imagesSeen = imagesSeen;
    this.numWorkers = numWorkers;
    this.syncMode = syncMode;
  }

  /**
   * The checkpoint step this fit resumed from, or 0 when it started from scratch; the histories
   * still cover every step, the ones before it read from the checkpoint.
   */
  public int resumedFromStep() {
    return resumedFromStep;
  }

  /** Wall-clock seconds of the whole fit, packing the data included. */
  public double wallSeconds() {
    return wallSeconds;
  }

  /** Training images per second over the whole fit (the steps it ran itself). */
  public double imagesPerSecond() {
    return imagesSeen / wallSeconds;
  }

  /**
   * Wall-clock seconds of the training steps alone, as worker 0 (or, with {@code syncMode=driver},
   * the driver) timed them: the fit without packing the data, starting the workers and returning
   * the weights.
   */
  public double stepSeconds() {
    return stepSeconds;
  }

  /**
   * Of {@link #stepSeconds()}, the seconds worker 0 spent in each step after its share of the
   * gradient was computed until the step's update was applied, summed: the gradients' exchange
   * that the backward pass did not hide, the wait for slower workers, and the optimizer's update
   * (for a worker alone, the update only). NaN with {@code syncMode=driver}, where each step's sum
   * is a Spark job of its own.
   */
  public double exchangeSeconds() {
    return exchangeSeconds;
  }

  /** Training images per second over the steps alone (see {@link #stepSeconds()}). */
  public double stepImagesPerSecond() {
    return imagesSeen / stepSeconds;
  }

  /** Number of workers that trained. */
  public int numWorkers() {
    return numWorkers;
  }

  /** {@code barrier} or {@code driver}. */
  public String syncMode() {
    return syncMode;
  }

  /** Mean cross-entropy of each step's global batch, step 1 first. */
  public double[] objectiveHistory() {
    return objectiveHistory.clone();
  }

  /** Fraction of each step's global batch the model classified right before the update. */
  public double[] accuracyHistory() {
    return accuracyHistory.clone();
  }

  /** Number of steps taken (fewer than {@code maxIter} when early stopping ended the fit). */
  public int totalIterations() {
    return objectiveHistory.length;
  }

  /** The steps after which the validation rows were evaluated, in order; empty without validation. */
  public int[] validationIterations() {
    return validation.steps().clone();
  }

  /** Mean cross-entropy of the validation rows at each of {@link #validationIterations()}. */
  public double[] validationLossHistory() {
    return validation.loss().clone();
  }

  /** Fraction of the validation rows classified right at each of {@link #validationIterations()}. */
  public double[] validationAccuracyHistory() {
    return validation.accuracy().clone();
  }

  /** The evaluated step with the lowest validation loss (improving by more than validationTol); 0 without validation. */
  public int bestIteration() {
    return validation.bestStep();
  }

  /** Whether early stopping ({@code earlyStoppingPatience}) ended the fit before {@code maxIter}. */
  public boolean stoppedEarly() {
    return validation.stopped();
  }

  /**
   * The step whose weights the model holds: the last step's, or with {@code earlyStoppingPatience}
   * set, the best evaluation's ({@link #bestIteration()}).
   */
  public int weightsIteration() {
    return weightsIteration;
  }
}
