package dev.convspark.jobs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.datasets.mnist.MnistArrays;
import dev.convspark.ml.CnnClassificationModel;
import dev.convspark.ml.CnnClassifier;
import java.nio.file.Path;
import java.util.List;
import org.apache.spark.ml.Pipeline;
import org.apache.spark.ml.PipelineModel;
import org.apache.spark.ml.PipelineStage;
import org.apache.spark.ml.feature.SQLTransformer;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.junit.jupiter.api.Test;

/**
 * The jobs' paths. {@code --model}: a saved model and a saved pipeline of that one model score
 * alike; a folder without a model, a pipeline of more stages and a saved estimator are usage errors
 * that name the flag and say what the folder holds. {@code --output}: what an earlier run wrote is
 * replaced only with {@code --overwrite}, and train says so before it trains.
 */
class JobPathsTest extends OnLocalSession {

  private static final String TEST = MnistArrays.defaultDir().resolve("t10k-images-idx3-ubyte").toAbsolutePath()
      .toString();

  private static void assertUsageError(String expected, String... args) {
    InProcessJobs.assertUsageError(expected, args);
  }

  /**
   * {@code train --weight-col} weighs a Parquet table's rows (a weight of 0 on every row of class 1:
   * the model never predicts it), and {@code evaluate} scores the model on data without that column.
   */
  @Test
  void trainWeighsTheRowsByWeightColAndEvaluateTakesDataWithoutIt() throws Exception {
    String table = tmp.resolve("weighted").toString();
    spark.read().format("idx").option("imageFormat", "vector").load(TEST).limit(2000)
        .withColumn("w", org.apache.spark.sql.functions.when(org.apache.spark.sql.functions.col("label").equalTo(1), 0.0)
            .otherwise(1.0))
        .write().parquet(table);
    String run = tmp.resolve("run").toString();
    InProcessJobs.ok("train", "--data", table, "--output", run, "--model", "softmax-regression", "--optimizer", "sgd",
        "--learning-rate", "0.5", "--keep-prob", "1", "--max-iter", "60", "--num-workers", "1", "--weight-col", "w");
    CnnClassificationModel m = CnnClassificationModel.load(tmp.resolve("run/model").toString());
    assertEquals("w", m.getOrDefault(m.weightCol()));
    String eval = tmp.resolve("eval-weighted").toString();
    InProcessJobs.ok("evaluate", "--model", run + "/model", "--data", TEST, "--output", eval);
    String metrics = java.nio.file.Files.readString(Path.of(eval, "metrics.json"));
    // Class 1 taught nothing and is never predicted; the other classes are learned.
    List<Row> predicted = m.transform(spark.read().format("idx").option("imageFormat", "vector").load(TEST))
        .groupBy("prediction").count().collectAsList();
    assertTrue(predicted.stream().noneMatch(r -> r.getDouble(0) == 1.0), predicted.toString());
    assertTrue(predicted.size() >= 8, predicted.toString());
    assertTrue(metrics.contains("\"accuracy\""), metrics);
  }

  @Test
  void aModelOrAPipelineOfItScoresAndAnythingElseIsRefusedNamingTheFlag() throws Exception {
    Dataset<Row> some = spark.read().format("idx").option("imageFormat", "vector").load(TEST).limit(500);
    CnnClassifier clf = new CnnClassifier().setModel("softmax-regression").setOptimizer("sgd").setLearningRate(0.5)
        .setKeepProb(1).setMaxIter(20).setNumWorkers(1).setSeed(3);
    PipelineModel pipeline = new Pipeline().setStages(new PipelineStage[] {clf}).fit(some);
    String pipeDir = tmp.resolve("pipeline").toString();
    pipeline.write().save(pipeDir);
    String modelDir = tmp.resolve("model").toString();
    ((CnnClassificationModel) pipeline.stages()[0]).write().save(modelDir);

    for (String dir : new String[] {modelDir, pipeDir}) {
      String out = tmp.resolve("scores-" + Path.of(dir).getFileName()).toString();
      InProcessJobs.ok("score", "--model", dir, "--data", TEST, "--output", out);
    }
    List<Row> a = spark.read().parquet(tmp.resolve("scores-model").toString()).orderBy("index")
        .select("index", "prediction").collectAsList();
    List<Row> b = spark.read().parquet(tmp.resolve("scores-pipeline").toString()).orderBy("index")
        .select("index", "prediction").collectAsList();
    assertEquals(10_000, a.size());
    assertEquals(a, b, "the pipeline of the one model scores as the model");
    InProcessJobs.ok("evaluate", "--model", pipeDir, "--data", TEST, "--output", tmp.resolve("eval").toString());

    // --layer: a layer's output instead of the prediction (here the one layer's, the logits).
    String layerOut = tmp.resolve("layer").toString();
    InProcessJobs.ok("score", "--model", modelDir, "--data", TEST, "--output", layerOut, "--layer", "dense1");
    Dataset<Row> written = spark.read().parquet(layerOut);
    assertEquals(List.of("index", "label", "cnnFeatures"), List.of(written.columns()));
    List<Row> features = written.orderBy("index").select("cnnFeatures").limit(50).collectAsList();
    List<Row> logits = CnnClassificationModel.load(modelDir).transform(spark.read().format("idx")
        .option("imageFormat", "vector").load(TEST)).orderBy("index").select("rawPrediction").limit(50).collectAsList();
    for (int i = 0; i < 50; i++) {
      org.apache.spark.ml.linalg.Vector f = features.get(i).getAs(0);
      org.apache.spark.ml.linalg.Vector z = logits.get(i).getAs(0);
      assertEquals(0.0, org.apache.spark.ml.linalg.Vectors.sqdist(f, z), 1e-9, "row " + i);
    }
    assertUsageError("--layer auto: model softmax-regression has no layer before its last dense layer", "score",
        "--model", modelDir, "--data", TEST, "--output", tmp.resolve("y").toString(), "--layer", "auto");
    assertUsageError("--layer conv9: layer 'conv9' is not a layer of model softmax-regression; its layers are dense1",
        "score", "--model", modelDir, "--data", TEST, "--output", tmp.resolve("y").toString(), "--layer", "conv9");

    String none = tmp.resolve("nothing").toString();
    assertUsageError("--model " + none + " holds no saved model (", "score", "--model", none, "--data", TEST,
        "--output", tmp.resolve("x").toString());
    assertUsageError("--model " + none + " holds no saved model (", "evaluate", "--model", none, "--data", TEST);

    String twoDir = tmp.resolve("two").toString();
    new Pipeline().setStages(new PipelineStage[] {new SQLTransformer().setStatement("SELECT * FROM __THIS__"), clf})
        .fit(some).write().save(twoDir);
    assertUsageError("holds a PipelineModel of 2 stages (SQLTransformer, CnnClassificationModel)", "score", "--model",
        twoDir, "--data", TEST, "--output", tmp.resolve("y").toString());

    String estimatorDir = tmp.resolve("estimator").toString();
    clf.write().save(estimatorDir);
    assertUsageError("--model " + estimatorDir + " holds a dev.convspark.ml.CnnClassifier, not a CnnClassificationModel",
        "evaluate", "--model", estimatorDir, "--data", TEST);
  }

  @Test
  void anEarlierRunsOutputIsReplacedOnlyWithOverwrite() throws Exception {
    Path run = tmp.resolve("run");
    String[] train = {"train", "--data", TEST, "--model", "softmax-regression", "--optimizer", "sgd", "--max-iter", "3",
        "--num-workers", "1", "--output", run.toString()};
    InProcessJobs.ok(train);
    java.nio.file.attribute.FileTime written = java.nio.file.Files.getLastModifiedTime(run.resolve("summary.json"));
    assertUsageError("--output " + run + " holds a model already (" + run.resolve("model")
        + "): give --overwrite to replace it", train);
    assertEquals(written, java.nio.file.Files.getLastModifiedTime(run.resolve("summary.json")), "nothing rewritten");
    String[] again = java.util.Arrays.copyOf(train, train.length + 1);
    again[train.length] = "--overwrite";
    InProcessJobs.ok(again);

    String out = tmp.resolve("scores").toString();
    String[] score = {"score", "--model", run.resolve("model").toString(), "--data", TEST, "--output", out};
    InProcessJobs.ok(score);
    assertUsageError("--output " + out + " exists already: give --overwrite to replace it", score);
    String[] replace = java.util.Arrays.copyOf(score, score.length + 1);
    replace[score.length] = "--overwrite";
    InProcessJobs.ok(replace);
    assertEquals(10_000, spark.read().parquet(out).count());
  }
}
