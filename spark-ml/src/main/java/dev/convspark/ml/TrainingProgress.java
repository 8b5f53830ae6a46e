package dev.convspark.ml;

import java.util.function.Consumer;

/**
 * Progress of the training running in this JVM, reported by worker 0 (barrier mode) or the driver
 * (driver mode): logged through log4j every {@value #LOG_EVERY} steps, and handed to a listener,
 * if one is set, every {@value #NOTIFY_EVERY} steps and at the last step. On a cluster the
 * barrier workers run in executors, so a listener set on the driver hears from driver-mode
 * training and from local-mode sessions only; the log lines are in the executor's log.
 */
public final class TrainingProgress {

  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(TrainingProgress.class);
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
   */
  public record Update(int step, int steps, double loss, double accuracy, double imagesPerSecond, double etaSeconds) {
  }

  /** Sets (or, with null, clears) the listener of this JVM. */
  public static void setListener(Consumer<Update> l) {
    listener = l;
  }

  /** Reports step {@code step} when it is due for a log line or a listener call. */
  static void report(int step, int steps, int startStep, double loss, double accuracy, double batch, long startNanos) {
    boolean last = step == steps;
    boolean log = step % LOG_EVERY == 0 || last;
    Consumer<Update> l = listener;
    boolean notify = l != null && (step % NOTIFY_EVERY == 0 || last);
    if (!log && !notify) {
      return;
    }
    double sec = (System.nanoTime() - startNanos) / 1e9;
    double ips = (step - startStep) * batch / Math.max(sec, 1e-9);
    Update u = new Update(step, steps, loss, accuracy, ips, (steps - step) * batch / ips);
    if (log) {
      LOG.info(String.format("step %d/%d  loss %.4f  accuracy %.4f  %.0f images/s  ETA %.0f s", step, steps, loss,
          accuracy, ips, u.etaSeconds()));
    }
    if (notify) {
      l.accept(u);
    }
  }
}
