package dev.convspark.ml.training;

import java.util.function.Consumer;
import dev.convspark.ml.TrainingProgress;

/**
 * The reporting side of {@link TrainingProgress}: the log line every
 * {@value TrainingProgress#LOG_EVERY} steps, the listener's updates every
 * {@value TrainingProgress#NOTIFY_EVERY}, and on a cluster the accumulators worker 0 publishes in
 * and the Spark listener that forwards them from executors' heartbeats. Internal to convspark:
 * public only for {@code dev.convspark.ml}.
 */
public final class ProgressReports {

  // Logged under the public class's name, the one users know and set log levels for.
  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(TrainingProgress.class);

  private ProgressReports() {
  }

  /** Reports step {@code step} when it is due for a log line or a listener call. */
  static void report(int step, int steps, int startStep, double loss, double accuracy, double batch, long startNanos) {
    report(step, steps, startStep, loss, accuracy, batch, startNanos, null);
  }

  /** Logs the evaluation just recorded by {@code v} after step {@code step}. */
  static void validated(int step, Validation v) {
    double[] latest = v.latest();
    LOG.info(String.format("step %d  validation loss %.4f  accuracy %.4f  (best at step %d%s)", step, latest[0],
        latest[1], v.bestStep(), v.stopped() ? "; early stopping: no improvement in " + v.plan().patience()
            + " evaluations" : ""));
  }

  /**
   * As above, with the validation so far ({@code v}, or null): a listener sees its latest
   * evaluation, and the step that early stopping ends on is reported as the last.
   */
  static void report(int step, int steps, int startStep, double loss, double accuracy, double batch, long startNanos,
                     Validation v) {
    steps = v != null && v.stopped() ? step : steps;
    boolean last = step == steps;
    boolean log = step % TrainingProgress.LOG_EVERY == 0 || last;
    Consumer<TrainingProgress.Update> l = TrainingProgress.listener();
    boolean notify = l != null && (step % TrainingProgress.NOTIFY_EVERY == 0 || last);
    if (!log && !notify) {
      return;
    }
    double sec = (System.nanoTime() - startNanos) / 1e9;
    double ips = (step - startStep) * batch / Math.max(sec, 1e-9);
    double[] val = v == null ? new double[] {Double.NaN, Double.NaN} : v.latest();
    TrainingProgress.Update u = new TrainingProgress.Update(step, steps, loss, accuracy, ips, (steps - step) * batch / ips, val[0], val[1]);
    if (log) {
      LOG.info(String.format("step %d/%d  loss %.4f  accuracy %.4f  %.0f images/s  ETA %.0f s", step, steps, loss,
          accuracy, ips, u.etaSeconds()));
    }
    if (notify) {
      l.accept(u);
    }
  }


  /** Worker 0's progress, published through accumulators that executors' heartbeats report. */
  public static final class Remote implements java.io.Serializable {
    private static final long serialVersionUID = 1L;
    static final String STEP = "convspark.progress.step";
    static final String LOSS = "convspark.progress.loss";
    static final String ACCURACY = "convspark.progress.accuracy";
    static final String VALIDATION_LOSS = "convspark.progress.validationLoss";
    static final String VALIDATION_ACCURACY = "convspark.progress.validationAccuracy";
    private final org.apache.spark.util.LongAccumulator step;
    private final org.apache.spark.util.DoubleAccumulator loss;
    private final org.apache.spark.util.DoubleAccumulator accuracy;
    private final org.apache.spark.util.DoubleAccumulator validationLoss;
    private final org.apache.spark.util.DoubleAccumulator validationAccuracy;

    private Remote(org.apache.spark.SparkContext sc) {
      step = sc.longAccumulator(STEP);
      loss = sc.doubleAccumulator(LOSS);
      accuracy = sc.doubleAccumulator(ACCURACY);
      validationLoss = sc.doubleAccumulator(VALIDATION_LOSS);
      validationAccuracy = sc.doubleAccumulator(VALIDATION_ACCURACY);
    }

    /**
     * Called by worker 0: the task's copies hold the latest values, not sums; {@code v}, the
     * validation so far or null.
     */
    void publish(int s, double l, double a, Validation v) {
      if (s % TrainingProgress.NOTIFY_EVERY != 0) {
        return;
      }
      step.reset();
      step.add(s);
      loss.reset();
      loss.add(l);
      accuracy.reset();
      accuracy.add(a);
      double[] val = v == null ? new double[] {Double.NaN, Double.NaN} : v.latest();
      validationLoss.reset();
      validationLoss.add(val[0]);
      validationAccuracy.reset();
      validationAccuracy.add(val[1]);
    }
  }

  /**
   * On a cluster (not a local master) with a listener set: the accumulators worker 0 publishes
   * into and the Spark listener that forwards them, removed by {@link #detach}. Null otherwise.
   */
  public static Remote attach(org.apache.spark.SparkContext sc, int steps, int batch) {
    Consumer<TrainingProgress.Update> l = TrainingProgress.listener();
    if (l == null || sc.isLocal()) {
      return null;
    }
    Remote r = new Remote(sc);
    HeartbeatListener h = new HeartbeatListener(l, steps, batch);
    sc.addSparkListener(h);
    LISTENERS.put(r, h);
    return r;
  }

  /** Removes what {@link #attach} added. */
  public static void detach(org.apache.spark.SparkContext sc, Remote r) {
    if (r != null) {
      HeartbeatListener h = LISTENERS.remove(r);
      if (h != null) {
        sc.removeSparkListener(h);
      }
    }
  }

  private static final java.util.Map<Remote, HeartbeatListener> LISTENERS = new java.util.concurrent.ConcurrentHashMap<>();

  private static final class HeartbeatListener extends org.apache.spark.scheduler.SparkListener {
    private final Consumer<TrainingProgress.Update> target;
    private final int steps;
    private final int batch;
    private long firstNanos;
    private long firstStep = -1;
    private long lastStep = -1;

    HeartbeatListener(Consumer<TrainingProgress.Update> target, int steps, int batch) {
      this.target = target;
      this.steps = steps;
      this.batch = batch;
    }

    @Override
    public void onExecutorMetricsUpdate(org.apache.spark.scheduler.SparkListenerExecutorMetricsUpdate event) {
      for (scala.Tuple4<Object, Object, Object, scala.collection.immutable.Seq<org.apache.spark.scheduler.AccumulableInfo>> t
          : scala.jdk.javaapi.CollectionConverters.asJava(event.accumUpdates())) {
        long step = -1;
        double loss = Double.NaN;
        double accuracy = Double.NaN;
        double validationLoss = Double.NaN;
        double validationAccuracy = Double.NaN;
        for (org.apache.spark.scheduler.AccumulableInfo info : scala.jdk.javaapi.CollectionConverters.asJava(t._4())) {
          String name = info.name().isDefined() ? info.name().get() : "";
          Object v = info.update().isDefined() ? info.update().get() : null;
          if (v instanceof Number n) {
            switch (name) {
              case Remote.STEP -> step = n.longValue();
              case Remote.LOSS -> loss = n.doubleValue();
              case Remote.ACCURACY -> accuracy = n.doubleValue();
              case Remote.VALIDATION_LOSS -> validationLoss = n.doubleValue();
              case Remote.VALIDATION_ACCURACY -> validationAccuracy = n.doubleValue();
              default -> { }
            }
          }
        }
        if (step > 0) {
          report(step, loss, accuracy, validationLoss, validationAccuracy);
        }
      }
    }

    private synchronized void report(long step, double loss, double accuracy, double validationLoss,
                                     double validationAccuracy) {
      if (step == lastStep) {
        return;
      }
      lastStep = step;
      long now = System.nanoTime();
      if (firstStep < 0) {
        firstStep = step;
        firstNanos = now;
        return;
      }
      double ips = (step - firstStep) * (double) batch / Math.max(1e-9, (now - firstNanos) / 1e9);
      target.accept(new TrainingProgress.Update((int) step, steps, loss, accuracy, ips, ips > 0 ? (steps - step) * batch / ips : Double.NaN,
          validationLoss, validationAccuracy));
    }
  }
}
