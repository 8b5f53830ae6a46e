package dev.convspark.ml.training;

import dev.convspark.tensor.optim.LearningRateSchedule;
import java.io.Serializable;

/**
 * What every worker of a fit needs, shipped with its tasks: the model, how to read the rows, the
 * recipe, the checkpoints, the progress channel, whether to encrypt, the validation plan.
 * {@code heInit}: the weights start as He et al.'s, not as the spec's; {@code shift}: the training
 * images' random shifts, or null; {@code initialWeights}: the weights a fit from scratch starts
 * from instead of the seeded ones ({@code initialModel}), or null; {@code weights}: the rows'
 * weights ({@code weightCol}), read as the rows' last field, or null.
 */
public record Settings(String spec, FeatureReader reader, LabelReader labels, String optimizer, float learningRate,
                int batchSize, int steps, float keepProb, boolean heInit, long seed, int threads,
                Checkpoints checkpoints, int checkpointInterval, String device, String precision,
                ProgressReports.Remote progress,
                boolean encrypt, LearningRateSchedule schedule, Validation.Plan validation, Shift shift,
                org.apache.spark.broadcast.Broadcast<float[]> initialWeights, WeightReader weights)
    implements Serializable {

  /** The validation indicator the workers read as the rows' third field, or null. */
  IndicatorReader indicator() {
    return validation == null ? null : validation.indicator();
  }
}
