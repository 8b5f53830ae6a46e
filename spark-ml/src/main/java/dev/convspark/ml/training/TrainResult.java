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

  /**
   * This result in Java serialisation's bytes, the form a barrier task hands it back in: whatever
   * {@code spark.serializer} the application chose (Kryo cannot write a record, nor an exception's
   * state reliably), Spark moves a byte array as it is.
   */
  byte[] toBytes() {
    java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
    try (java.io.ObjectOutputStream out = new java.io.ObjectOutputStream(bytes)) {
      out.writeObject(this);
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException("could not serialise a training result: " + e.getMessage(), e);
    }
    return bytes.toByteArray();
  }

  /** The result {@link #toBytes()} wrote. */
  static TrainResult fromBytes(byte[] b) {
    try (java.io.ObjectInputStream in = new java.io.ObjectInputStream(new java.io.ByteArrayInputStream(b))) {
      return (TrainResult) in.readObject();
    } catch (java.io.IOException | ClassNotFoundException e) {
      throw new IllegalStateException("could not read a training result back: " + e.getMessage(), e);
    }
  }
}
