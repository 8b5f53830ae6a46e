package dev.convspark.ml;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.datasets.mnist.MnistArrays;
import java.nio.file.Path;
import java.util.List;
import org.apache.spark.ml.Pipeline;
import org.apache.spark.ml.PipelineModel;
import org.apache.spark.ml.PipelineStage;
import org.apache.spark.ml.attribute.AttributeGroup;
import org.apache.spark.ml.classification.LogisticRegression;
import org.apache.spark.ml.evaluation.MulticlassClassificationEvaluator;
import org.apache.spark.ml.linalg.Vector;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link CnnFeaturizer}: a trained network's inner layer as a Vector column, on a real local
 * SparkSession with real MNIST rows. The last layer applied to the featurizer's output gives the
 * model's logits; MLlib's LogisticRegression learns from the features in a Pipeline that saves and
 * loads; a layer the network lacks is refused, naming its layers.
 */
class CnnFeaturizerTest {

  private static final String SPEC = "in28x28x1-conv5x5x4-relu-pool2-dense32-relu-dense10";
  private static SparkSession spark;
  private static Dataset<Row> train;
  private static Dataset<Row> test;
  private static CnnClassificationModel model;

  @TempDir
  Path tmp;

  @BeforeAll
  static void start() {
    spark = LocalSessions.builder("convspark-featurizer").getOrCreate();
    Path mnist = MnistArrays.defaultDir().toAbsolutePath();
    train = spark.read().format("idx").option("imageFormat", "vector")
        .load(mnist.resolve("train-images-idx3-ubyte").toString()).limit(3000).repartition(2).cache();
    test = spark.read().format("idx").option("imageFormat", "vector")
        .load(mnist.resolve("t10k-images-idx3-ubyte").toString()).limit(1000).cache();
    model = new CnnClassifier().setModel(SPEC).setLearningRate(3e-3).setBatchSize(50).setMaxIter(100)
        .setNumWorkers(2).setSeed(3).fit(train);
  }

  @AfterAll
  static void stop() {
    spark.stop();
  }

  @Test
  void theLastLayerAppliedToTheFeaturesGivesTheModelsLogits() {
    CnnFeaturizer f = model.featurizer();
    assertEquals("relu3", f.getOrDefault(f.layer()), "the layer before the last dense layer");
    assertEquals(32, f.numFeatures());
    Dataset<Row> out = f.transform(model.transform(test.limit(200)));
    assertEquals(32, AttributeGroup.fromStructField(out.schema().apply("cnnFeatures")).size());
    float[] w = model.weights();
    int wAt = w.length - (32 * 10 + 10);
    double worst = 0;
    int positive = 0;
    for (Row r : out.select("cnnFeatures", "rawPrediction").collectAsList()) {
      Vector x = r.getAs(0);
      Vector logits = r.getAs(1);
      for (int c = 0; c < 10; c++) {
        // dense2: inputs x units weights, then the biases.
        double z = w[wAt + 32 * 10 + c];
        for (int i = 0; i < 32; i++) {
          z += x.apply(i) * w[wAt + i * 10 + c];
        }
        worst = Math.max(worst, Math.abs(z - logits.apply(c)) / Math.max(1, Math.abs(logits.apply(c))));
      }
      for (int i = 0; i < 32; i++) {
        assertTrue(x.apply(i) >= 0, "after the ReLU");
        positive += x.apply(i) > 0 ? 1 : 0;
      }
    }
    assertTrue(worst < 1e-5, "dense2 of the features against the model's logits: " + worst);
    // One row outside a DataFrame gives the column's values.
    Row first = out.select("features", "cnnFeatures").first();
    assertEquals(0.0, org.apache.spark.ml.linalg.Vectors.sqdist(f.layerOutput(first.getAs(0)), first.getAs(1)), 1e-12);
    String wrong = assertThrows(IllegalArgumentException.class,
        () -> f.layerOutput(org.apache.spark.ml.linalg.Vectors.zeros(5))).getMessage();
    assertEquals("layerOutput: features holds 5 values but the model's input needs 784", wrong);
    assertTrue(positive > 200, "features that are not all zero: " + positive);
    // An image layer: pool1's 14 x 14 x 4 outputs.
    assertEquals(784, model.featurizer("pool1").numFeatures());
    assertEquals("CnnFeaturizer: uid=" + f.uid() + ", layer=relu3, numFeatures=32", f.toString());
    // A model and its copies (a featurizer scores through a copy per call) broadcast the weights once.
    org.apache.spark.SparkContext sc = spark.sparkContext();
    assertEquals(model.broadcastWeights(sc).id(),
        model.copy(org.apache.spark.ml.param.ParamMap.empty()).broadcastWeights(sc).id());
  }

  /** Transfer learning: MLlib's LogisticRegression on the network's inner features, in a Pipeline saved and loaded. */
  @Test
  void logisticRegressionLearnsFromTheFeaturesInAPipelineThatSavesAndLoads() throws Exception {
    Pipeline pipeline = new Pipeline().setStages(new PipelineStage[] {
        model.featurizer().setOutputCol("cnn"),
        new LogisticRegression().setFeaturesCol("cnn").setMaxIter(50)});
    PipelineModel fitted = pipeline.fit(train);
    String dir = tmp.resolve("pipeline").toString();
    fitted.write().save(dir);
    PipelineModel loaded = PipelineModel.load(dir);
    List<Row> a = fitted.transform(test).select("prediction").collectAsList();
    List<Row> b = loaded.transform(test).select("prediction").collectAsList();
    assertEquals(a, b, "the loaded pipeline predicts as the fitted one");
    double accuracy = new MulticlassClassificationEvaluator().setMetricName("accuracy").evaluate(loaded.transform(test));
    double cnn = model.evaluate(test).accuracy();
    System.out.printf("test accuracy: the CNN %.3f, LogisticRegression on its relu3 features %.3f%n", cnn, accuracy);
    assertTrue(accuracy > 0.8 && accuracy > cnn - 0.05, "LogisticRegression " + accuracy + ", the CNN " + cnn);
    CnnFeaturizer again = (CnnFeaturizer) loaded.stages()[0];
    assertEquals("relu3", again.getOrDefault(again.layer()));
    assertEquals("cnn", again.getOrDefault(again.outputCol()));
  }

  @Test
  void aLayerTheNetworkLacksAndAnOutputColumnThatExistsAreRefused() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> model.featurizer("dense7"));
    assertEquals("layer 'dense7' is not a layer of model " + SPEC + "; its layers are conv1, relu1, pool1, flatten2,"
        + " dense1, relu3, dense2", e.getMessage());
    CnnClassificationModel softmax = new CnnClassifier().setModel("softmax-regression").setOptimizer("sgd")
        .setMaxIter(2).setNumWorkers(1).fit(test.limit(100));
    e = assertThrows(IllegalArgumentException.class, softmax::featurizer);
    assertTrue(e.getMessage().startsWith("model softmax-regression has no layer before its last dense layer"),
        e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> model.featurizer().setOutputCol("label").transform(test));
    assertEquals("outputCol 'label' exists already; name another column", e.getMessage());
    String missing = assertThrows(IllegalArgumentException.class,
        () -> model.featurizer().setInputCol("pixels").transform(test)).getMessage();
    assertTrue(missing.contains("'pixels'"), missing);
  }
}
