package dev.convspark.ml;

import java.io.Serializable;

/** What a training run hands back to the driver: the final weights and the per-step history. */
record TrainResult(float[] weights, double[] loss, double[] accuracy) implements Serializable {
}
