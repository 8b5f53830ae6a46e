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
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;

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
        + "             [--overwrite] [--resize] [--PARAM VALUE ...]\n"
        + "  Trains a CnnClassifier and writes under --output (default data/run): model/ (load it with\n"
        + "  CnnClassificationModel.load), summary.json, summary.csv (step, loss, accuracy, and with\n"
        + "  validation validation_loss and validation_accuracy at the steps evaluated), loss.png and\n"
        + "  accuracy.png. --data and --validation are IDX files (labels found beside them), a Parquet\n"
        + "  table (features and label columns), or a directory of images whose parent directory\n"
        + "  names are their labels (--resize scales images of another size to the model's; without it\n"
        + "  they are refused); --format auto tells them apart. --validation's rows are held out\n"
        + "  and evaluated while training, every --validation-interval steps, as rows marked by\n"
        + "  --validation-indicator-col are (a column of --data; not both); --early-stopping-patience N\n"
        + "  stops after N evaluations without improvement. An --output that holds a model already is\n"
        + "  refused before training unless --overwrite is given (then its outputs are replaced).\n"
        + "  Every CnnClassifier param is a flag:\n"
        + ParamArgs.help(new CnnClassifier());
  }

  static int run(String[] args) throws IOException {
    CnnClassifier clf = new CnnClassifier();
    String data = null;
    String validation = null;
    String format = "auto";
    boolean resize = false;
    Path out = Path.of("data/run");
    boolean overwrite = false;
    for (int i = 0; i < args.length; i++) {
      String a = args[i];
      switch (a) {
        case "--data" -> data = Args.value(args, ++i, a);
        case "--validation" -> validation = Args.value(args, ++i, a);
        case "--format" -> format = JobData.format(Args.value(args, ++i, a));
        case "--resize" -> resize = true;
        case "--output" -> out = Path.of(Args.value(args, ++i, a));
        case "--overwrite" -> overwrite = true;
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
    // Checked before the fit, which may take hours: Spark's save refuses an existing path likewise.
    if (!overwrite && Files.exists(out.resolve("model"))) {
      throw new UsageException("--output " + out + " holds a model already (" + out.resolve("model")
          + "): give --overwrite to replace it, or another --output");
    }
    ModelSpec spec = ModelSpec.parse(clf.getOrDefault(clf.model()));
    Shape in = spec.inputShape();
    SparkSession spark = Jobs.session("convspark train");
    String featuresCol = clf.getOrDefault(clf.featuresCol());
    JobData.Input input = JobData.load(spark, data, format, featuresCol, in, false, resize);
    Dataset<Row> train = input.rows();
    clf.setFeaturesCol(input.features());
    if (validation != null) {
      JobData.Input held = JobData.load(spark, validation, format, featuresCol, in, false, resize);
      train = withValidation(clf, input, held);
    }
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
    // The validation accuracy of the model's own weights: evaluated at their step while training.
    Double valAcc = null;
    int[] evaluated = s.validationIterations();
    for (int i = 0; i < evaluated.length; i++) {
      if (evaluated[i] == s.weightsIteration()) {
        valAcc = s.validationAccuracyHistory()[i];
      }
    }
    writeSummary(out, spec, clf, s, data, validation, valAcc, modelPath);
    int window = Math.max(1, s.totalIterations() / 100);
    boolean validated = evaluated.length > 0;
    Pictures.lineChart(out.resolve("loss.png"), validated ? "loss: training and validation" : "training loss",
        "mean cross-entropy", s.objectiveHistory(), window, 800, 500, evaluated, s.validationLossHistory());
    Pictures.lineChart(out.resolve("accuracy.png"), validated ? "accuracy: training and validation"
        : "training accuracy", "accuracy", s.accuracyHistory(), window, 800, 500, evaluated,
        s.validationAccuracyHistory());
    System.out.printf(Locale.ROOT, "trained in %s (%.0f images/s on %d worker%s)%s%s%s%n",
        QuickstartCommand.duration(s.wallSeconds()), s.imagesPerSecond(), s.numWorkers(), s.numWorkers() == 1 ? "" : "s",
        s.resumedFromStep() > 0 ? ", resumed from step " + s.resumedFromStep() : "",
        s.stoppedEarly() ? String.format(Locale.ROOT, "; early stopping after step %,d, the model holds step %,d's"
            + " weights", s.totalIterations(), s.weightsIteration()) : "",
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
    m.put("best_step", s.bestIteration());
    m.put("weights_step", s.weightsIteration());
    m.put("stopped_early", s.stoppedEarly());
    m.put("model_path", modelPath);
    Files.writeString(out.resolve("summary.json"), Json.write(m));
    List<String> lines = new ArrayList<>();
    int[] evaluated = s.validationIterations();
    double[] valLoss = s.validationLossHistory();
    double[] valAccuracy = s.validationAccuracyHistory();
    lines.add(evaluated.length == 0 ? "step,loss,accuracy" : "step,loss,accuracy,validation_loss,validation_accuracy");
    for (int i = 0, v = 0; i < n; i++) {
      String line = String.format(Locale.ROOT, "%d,%.6f,%.6f", i + 1, loss[i], acc[i]);
      if (evaluated.length > 0) {
        boolean here = v < evaluated.length && evaluated[v] == i + 1;
        line += here ? String.format(Locale.ROOT, ",%.6f,%.6f", valLoss[v], valAccuracy[v++]) : ",,";
      }
      lines.add(line);
    }
    Files.write(out.resolve("summary.csv"), lines);
  }

  /**
   * {@code train} and {@code validation} as one DataFrame for the fit, the validation rows marked
   * by a boolean column that {@code clf}'s {@code validationIndicatorCol} then names.
   *
   * @throws UsageException when {@code validationIndicatorCol} is set already
   */
  static Dataset<Row> withValidation(CnnClassifier clf, JobData.Input train, JobData.Input validation) {
    if (clf.isSet(clf.validationIndicatorCol())) {
      throw new UsageException("--validation and --validation-indicator-col are both set; give one of them");
    }
    String label = clf.getOrDefault(clf.labelCol());
    String marker = "isValidation";
    clf.setValidationIndicatorCol(marker);
    clf.setFeaturesCol(JobData.FEATURES);
    return train.rows().select(functions.col(train.features()).as(JobData.FEATURES), functions.col(label))
        .withColumn(marker, functions.lit(false))
        .unionByName(validation.rows().select(functions.col(validation.features()).as(JobData.FEATURES),
            functions.col(label)).withColumn(marker, functions.lit(true)));
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
      String stats = String.format(Locale.ROOT, "step %d/%d  loss %.4f  accuracy %.3f%s  %.0f images/s  ETA %s",
          u.step(), u.steps(), u.loss(), u.accuracy(), Double.isNaN(u.validationLoss()) ? ""
              : String.format(Locale.ROOT, "  validation loss %.4f accuracy %.4f", u.validationLoss(),
                  u.validationAccuracy()), u.imagesPerSecond(), QuickstartCommand.duration(Math.max(0, u.etaSeconds())));
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
