package dev.convspark.jobs;

import dev.convspark.ml.CnnClassificationModel;
import dev.convspark.ml.CnnClassifier;
import dev.convspark.ml.CnnTrainingSummary;
import dev.convspark.ml.TrainingProgress;
import dev.convspark.tensor.Shape;
import dev.convspark.tensor.spec.ModelSpec;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.apache.spark.ml.evaluation.MulticlassClassificationEvaluator;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;

/**
 * {@code train}: fits {@link CnnClassifier} on IDX files, a Parquet table or an image directory,
 * and writes the model (MLlib format), the training summary (JSON and CSV) and the loss and
 * accuracy curves (PNG) under {@code --output}.
 */
final class TrainJob {

  private TrainJob() {
  }

  static String usage() {
    return "usage: train --data PATH [--validation PATH] [--format auto|idx|parquet|image] [--output DIR]\n"
        + "             [--PARAM VALUE ...]\n"
        + "  Trains a CnnClassifier and writes under --output (default data/run): model/ (load it with\n"
        + "  CnnClassificationModel.load), summary.json, summary.csv (step, loss, accuracy), loss.png and\n"
        + "  accuracy.png. --data and --validation are IDX files (labels found beside them), a Parquet\n"
        + "  table (features and label columns), or a directory of 28x28 images whose parent directory\n"
        + "  names are their labels; --format auto tells them apart. Every CnnClassifier param is a flag:\n"
        + ParamArgs.help(new CnnClassifier());
  }

  static int run(String[] args) throws IOException {
    CnnClassifier clf = new CnnClassifier();
    String data = null;
    String validation = null;
    String format = "auto";
    Path out = Path.of("data/run");
    for (int i = 0; i < args.length; i++) {
      String a = args[i];
      switch (a) {
        case "--data" -> data = Args.value(args, ++i, a);
        case "--validation" -> validation = Args.value(args, ++i, a);
        case "--format" -> format = JobData.format(Args.value(args, ++i, a));
        case "--output" -> out = Path.of(Args.value(args, ++i, a));
        case "-h", "--help" -> {
          System.out.print(usage());
          return 0;
        }
        default -> {
          if (!ParamArgs.isParam(clf, a)) {
            throw new UsageException("unknown argument '" + a + "' (try --help)");
          }
          ParamArgs.set(clf, a, Args.value(args, ++i, a));
        }
      }
    }
    if (data == null) {
      throw new UsageException("--data is required (try --help)");
    }
    ModelSpec spec = ModelSpec.parse(clf.getOrDefault(clf.model()));
    Shape in = spec.inputShape();
    SparkSession spark = Jobs.session("convspark train");
    String featuresCol = clf.getOrDefault(clf.featuresCol());
    Dataset<Row> train = JobData.load(spark, data, format, featuresCol, in);
    clf.setFeaturesCol(JobData.FEATURES);
    int steps = (Integer) clf.getOrDefault(clf.maxIter());
    int batch = (Integer) clf.getOrDefault(clf.batchSize());
    System.out.printf(Locale.ROOT, "training %s on %s: %,d steps of %d (%s, %s sync)%n", spec.name(), data, steps, batch,
        clf.getOrDefault(clf.optimizer()), clf.getOrDefault(clf.syncMode()));
    if (!spark.sparkContext().isLocal() && "barrier".equals(clf.getOrDefault(clf.syncMode()))) {
      System.out.println("progress: worker 0 reports it through executor heartbeats (every "
          + spark.sparkContext().getConf().get("spark.executor.heartbeatInterval", "10s") + ")");
    }
    Progress progress = new Progress(System.console() != null);
    TrainingProgress.setListener(progress);
    CnnClassificationModel model;
    try {
      model = clf.fit(train);
    } finally {
      TrainingProgress.setListener(null);
      progress.finish();
    }
    Files.createDirectories(out);
    String modelPath = out.resolve("model").toAbsolutePath().toString();
    model.write().overwrite().save(modelPath);
    CnnTrainingSummary s = model.summary();
    Double valAcc = null;
    if (validation != null) {
      Dataset<Row> val = JobData.load(spark, validation, format, featuresCol, in);
      valAcc = new MulticlassClassificationEvaluator().setMetricName("accuracy").setLabelCol(clf.getOrDefault(clf.labelCol()))
          .evaluate(model.transform(val));
    }
    writeSummary(out, spec, clf, s, data, validation, valAcc, modelPath);
    Pictures.lineChart(out.resolve("loss.png"), "training loss", "mean cross-entropy", s.objectiveHistory(),
        Math.max(1, steps / 100), 800, 500);
    Pictures.lineChart(out.resolve("accuracy.png"), "training accuracy", "batch accuracy", s.accuracyHistory(),
        Math.max(1, steps / 100), 800, 500);
    System.out.printf(Locale.ROOT, "trained in %s (%.0f images/s on %d worker%s)%s%s%n",
        QuickstartCommand.duration(s.wallSeconds()), s.imagesPerSecond(), s.numWorkers(), s.numWorkers() == 1 ? "" : "s",
        s.resumedFromStep() > 0 ? ", resumed from step " + s.resumedFromStep() : "",
        valAcc == null ? "" : String.format(Locale.ROOT, "; validation accuracy %.4f", valAcc));
    System.out.println("model:    " + modelPath);
    System.out.println("summary:  " + out.resolve("summary.json") + ", " + out.resolve("summary.csv"));
    System.out.println("pictures: " + out.resolve("loss.png") + ", " + out.resolve("accuracy.png"));
    return 0;
  }

  private static void writeSummary(Path out, ModelSpec spec, CnnClassifier clf, CnnTrainingSummary s, String data,
                                   String validation, Double valAcc, String modelPath) throws IOException {
    double[] loss = s.objectiveHistory();
    double[] acc = s.accuracyHistory();
    int n = loss.length;
    int tail = Math.min(n, 100);
    double lastLoss = 0;
    double lastAcc = 0;
    for (int i = n - tail; i < n; i++) {
      lastLoss += loss[i] / tail;
      lastAcc += acc[i] / tail;
    }
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("model", spec.specString());
    m.put("data", data);
    m.put("validation", validation);
    m.put("steps", n);
    m.put("batch_size", clf.getOrDefault(clf.batchSize()));
    m.put("optimizer", clf.getOrDefault(clf.optimizer()));
    m.put("learning_rate", clf.getOrDefault(clf.learningRate()));
    m.put("num_workers", s.numWorkers());
    m.put("sync_mode", s.syncMode());
    m.put("resumed_from_step", s.resumedFromStep());
    m.put("wall_seconds", s.wallSeconds());
    m.put("images_per_s", s.imagesPerSecond());
    m.put("step_seconds", s.stepSeconds());
    m.put("step_images_per_s", s.stepImagesPerSecond());
    m.put("final_loss_last100", lastLoss);
    m.put("train_accuracy_last100", lastAcc);
    m.put("validation_accuracy", valAcc);
    m.put("model_path", modelPath);
    Files.writeString(out.resolve("summary.json"), Json.write(m));
    List<String> lines = new ArrayList<>();
    lines.add("step,loss,accuracy");
    for (int i = 0; i < n; i++) {
      lines.add(String.format(Locale.ROOT, "%d,%.6f,%.6f", i + 1, loss[i], acc[i]));
    }
    Files.write(out.resolve("summary.csv"), lines);
  }

  /** Shows progress: a bar redrawn in place on a terminal, a plain line every 100 steps otherwise. */
  static final class Progress implements java.util.function.Consumer<TrainingProgress.Update> {
    private final boolean terminal;
    private boolean drawn;
    private int printed;

    Progress(boolean terminal) {
      this.terminal = terminal;
    }

    @Override
    public synchronized void accept(TrainingProgress.Update u) {
      String stats = String.format(Locale.ROOT, "step %d/%d  loss %.4f  accuracy %.3f  %.0f images/s  ETA %s",
          u.step(), u.steps(), u.loss(), u.accuracy(), u.imagesPerSecond(),
          QuickstartCommand.duration(Math.max(0, u.etaSeconds())));
      if (terminal) {
        int width = 30;
        int done = (int) Math.round(width * (double) u.step() / u.steps());
        System.err.print("\r[" + "#".repeat(done) + ".".repeat(width - done) + "] " + stats + "  ");
        drawn = true;
      } else if (u.step() / TrainingProgress.LOG_EVERY > printed / TrainingProgress.LOG_EVERY || u.step() == u.steps()) {
        // Every 100 steps, or at the first report past each hundred (heartbeats come at their own pace).
        System.out.println(stats);
        printed = u.step();
      }
    }

    synchronized void finish() {
      if (drawn) {
        System.err.println();
      }
    }
  }
}
