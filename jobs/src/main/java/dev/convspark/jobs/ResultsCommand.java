package dev.convspark.jobs;

import dev.convspark.datasets.mnist.MnistArrays;
import dev.convspark.ml.CnnClassificationModel;
import dev.convspark.ml.CnnClassifier;
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
 * {@code convspark results-runs}: the convspark side of {@code bin/convspark results}. Trains
 * softmax regression and the deep-mnist CNN with the tutorial's recipes through Spark with 1, 2
 * and 4 barrier workers (one worker uses every core; more workers use one core each, on a
 * {@code local[N]} session with a slot per worker), and records test accuracy, training images/s
 * and wall time as one JSON list.
 */
final class ResultsCommand {

  private ResultsCommand() {
  }

  static int run(String[] args) throws IOException {
    int cnnSteps = 2000;
    int softmaxSteps = 1000;
    List<Integer> workers = List.of(1, 2, 4);
    Path data = MnistArrays.defaultDir();
    Path json = null;
    for (int i = 0; i < args.length; i++) {
      String a = args[i];
      switch (a) {
        case "--cnn-steps" -> cnnSteps = Args.intValue(args, ++i, a, 1, 10_000_000);
        case "--softmax-steps" -> softmaxSteps = Args.intValue(args, ++i, a, 1, 10_000_000);
        case "--workers" -> {
          List<Integer> w = new ArrayList<>();
          for (String s : Args.value(args, ++i, a).split(",")) {
            w.add(Args.intValue(new String[] {s.trim()}, 0, a, 1, 64));
          }
          workers = w;
        }
        case "--data" -> data = Path.of(Args.value(args, ++i, a));
        case "--json" -> json = Path.of(Args.value(args, ++i, a));
        case "-h", "--help" -> {
          System.out.println("usage: convspark results-runs [--cnn-steps 2000] [--softmax-steps 1000] [--workers 1,2,4]"
              + " [--json FILE]");
          return 0;
        }
        default -> throw new UsageException("results-runs: unknown argument '" + a + "'");
      }
    }
    int cores = Runtime.getRuntime().availableProcessors();
    List<Object> rows = new ArrayList<>();
    for (String model : List.of(ModelSpec.SOFTMAX_REGRESSION, ModelSpec.DEEP_MNIST)) {
      boolean cnn = model.equals(ModelSpec.DEEP_MNIST);
      int steps = cnn ? cnnSteps : softmaxSteps;
      for (int w : workers) {
        int threads = w == 1 ? cores : 1;
        SparkSession spark = SparkSession.builder().master("local[" + Math.max(w, cores) + "]")
            .appName("convspark results").config("spark.ui.enabled", "false").getOrCreate();
        try {
          Dataset<Row> train = spark.read().format("idx").option("imageFormat", "vector")
              .load(data.resolve("train-images-idx3-ubyte").toAbsolutePath().toString());
          Dataset<Row> test = spark.read().format("idx").option("imageFormat", "vector")
              .load(data.resolve("t10k-images-idx3-ubyte").toAbsolutePath().toString());
          CnnClassifier clf = new CnnClassifier().setModel(model).setMaxIter(steps).setSeed(1).setNumWorkers(w)
              .setThreadsPerWorker(threads);
          if (!cnn) {
            clf.setOptimizer("sgd").setLearningRate(0.5).setKeepProb(1.0);
          }
          System.out.printf(Locale.ROOT, "== %s, %d worker(s) x %d thread(s), %d steps%n", model, w, threads, steps);
          CnnClassificationModel m = clf.fit(train);
          double acc = new MulticlassClassificationEvaluator().setMetricName("accuracy")
              .evaluate(m.setThreadsPerWorker(cores).transform(test));
          Map<String, Object> r = new LinkedHashMap<>();
          r.put("model", model);
          r.put("workers", w);
          r.put("threads_per_worker", threads);
          r.put("steps", steps);
          r.put("test_accuracy", acc);
          r.put("images_per_s", m.summary().imagesPerSecond());
          r.put("wall_s", m.summary().wallSeconds());
          System.out.printf(Locale.ROOT, "   test accuracy %.4f, %.0f images/s, %.1f s%n", acc,
              m.summary().imagesPerSecond(), m.summary().wallSeconds());
          rows.add(r);
        } finally {
          spark.stop();
        }
      }
    }
    if (json != null) {
      StringBuilder b = new StringBuilder("[\n");
      for (int i = 0; i < rows.size(); i++) {
        @SuppressWarnings("unchecked")
        Map<String, Object> r = (Map<String, Object>) rows.get(i);
        b.append(Json.write(r).trim()).append(i + 1 < rows.size() ? ",\n" : "\n");
      }
      Files.writeString(json, b.append("]\n").toString());
    }
    return 0;
  }
}
