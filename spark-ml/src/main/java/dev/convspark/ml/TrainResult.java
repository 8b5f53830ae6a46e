package dev.convspark.ml;

import java.io.Serializable;

/**
 * What a training run hands back to the driver: the final weights, the per-step history, the
 * checkpoint step it resumed from (0 when it started from scratch) and the seconds its steps took;
 * or, when training cannot succeed whatever the retries (bad input, a diverged model), only
 * {@code failure}.
 */
record TrainResult(float[] weights, double[] loss, double[] accuracy, int resumedFromStep, double stepSeconds,
                   RuntimeException failure) implements Serializable {

  TrainResult(float[] weights, double[] loss, double[] accuracy, int resumedFromStep, double stepSeconds) {
    this(weights, loss, accuracy, resumedFromStep, stepSeconds, null);
  }

  static TrainResult failed(RuntimeException failure) {
    return new TrainResult(null, null, null, 0, 0, failure);
  }
}
