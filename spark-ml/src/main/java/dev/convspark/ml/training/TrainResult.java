package dev.convspark.ml.training;

import java.io.Serializable;

/**
 * What a training run hands back to the driver: the weights of the model (the last step's, or
 * with early stopping the best evaluation's), the per-step history of the steps it ran, the
 * validation history (null without validation), the checkpoint step it resumed from (0 when it
 * started from scratch), the seconds its steps took and, of those, the seconds worker 0 spent after
 * each step's gradient until its update was applied (NaN in driver mode); or, when training
 * cannot succeed whatever the retries (bad input, a diverged model), only {@code failure}.
 */
public record TrainResult(float[] weights, double[] loss, double[] accuracy, Validation.History validation,
                          int resumedFromStep, double stepSeconds, double exchangeSeconds, RuntimeException failure)
    implements Serializable {

  TrainResult(float[] weights, double[] loss, double[] accuracy, Validation.History validation, int resumedFromStep,
              double stepSeconds, double exchangeSeconds) {
    this(weights, loss, accuracy, validation, resumedFromStep, stepSeconds, exchangeSeconds, null);
  }

  static TrainResult failed(RuntimeException failure) {
    return new TrainResult(null, null, null, null, 0, 0, 0, failure);
  }
}
