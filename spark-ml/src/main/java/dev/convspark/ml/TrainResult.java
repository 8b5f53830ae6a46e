package dev.convspark.ml;

import java.io.Serializable;

/**
 * What a training run hands back to the driver: the final weights, the per-step history and the
 * checkpoint step it resumed from (0 when it started from scratch).
 */
record TrainResult(float[] weights, double[] loss, double[] accuracy, int resumedFromStep) implements Serializable {
}
