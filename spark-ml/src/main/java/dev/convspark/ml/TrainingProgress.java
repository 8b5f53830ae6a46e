package dev.convspark.ml;

import java.util.function.Consumer;

/**
 * Progress of the training running in this JVM, reported by worker 0 (barrier mode) or the driver
 * (driver mode): logged through log4j every {@value #LOG_EVERY} steps, and handed to a listener,
 * if one is set, every {@value #NOTIFY_EVERY} steps and at the last step. On a cluster the
 * barrier workers run in executors: there worker 0 also publishes its progress in accumulators,
 * which executors report with their heartbeats ({@code spark.executor.heartbeatInterval}, 10 s by
 * default), and a driver-side Spark listener hands those to the listener, so a driver on a
 * cluster sees progress too, at heartbeat pace.
 */
public final class TrainingProgress {

  /** Steps between log lines. */
  public static final int LOG_EVERY = 100;
  /** Steps between listener calls. */
  public static final int NOTIFY_EVERY = 10;

  private static volatile Consumer<Update> listener;

  private TrainingProgress() {
  }

  /**
   * One progress report.
   *
   * @param step            steps done
   * @param steps           steps in the whole run
   * @param loss            mean loss of this step's global batch
   * @param accuracy        training accuracy of this step's global batch
   * @param imagesPerSecond images per second since this run (or resume) started
   * @param etaSeconds      estimated seconds to the last step
   * @param validationLoss  mean loss of the validation rows at the latest evaluation; NaN before
   *                        the first, and without validation
   * @param validationAccuracy accuracy of the validation rows at the latest evaluation, or NaN
   */
  public record Update(int step, int steps, double loss, double accuracy, double imagesPerSecond, double etaSeconds,
                       double validationLoss, double validationAccuracy) {

    /** An update without validation figures. */
    public Update(int step, int steps, double loss, double accuracy, double imagesPerSecond, double etaSeconds) {
      this(step, steps, loss, accuracy, imagesPerSecond, etaSeconds, Double.NaN, Double.NaN);
    }
  }

  /** Sets (or, with null, clears) the listener of this JVM. */
  public static void setListener(Consumer<Update> l) {
    listener = l;
  }

  /** The listener of this JVM, or null. */
  public static Consumer<Update> listener() {
    return listener;
  }
}
