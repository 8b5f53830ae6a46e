package dev.convspark.ml;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;
import org.junit.jupiter.api.Test;

/**
 * Training and scoring under {@code spark.serializer=KryoSerializer}, as many clusters run: every
 * route a fit takes moves something through Spark's serializer (barrier training's result through
 * a shuffle, driver mode's gradient sums as task results, packed blocks through a shuffle when
 * there are more partitions than workers, the weights as broadcasts). With registration required,
 * {@link CnnKryoRegistrator} registers what training moves; without it Kryo names the class.
 */
class KryoTest {

  private static SparkSession kryo(boolean registrationRequired, String registrator) {
    return LocalSessions.builder("convspark-kryo")
        .config("spark.serializer", "org.apache.spark.serializer.KryoSerializer")
        .config("spark.kryo.registrationRequired", Boolean.toString(registrationRequired))
        .config("spark.kryo.registrator", registrator).getOrCreate();
  }

  /** Fits through each route (barrier, driver, barrier after packing 120 partitions) and scores. */
  private static List<float[]> fitEveryRoute(SparkSession spark) {
    String path = LocalSessions.mnist("train-images-idx3-ubyte");
    Dataset<Row> few = spark.read().format("idx").option("imageFormat", "vector").load(path).limit(1000)
        .withColumn("isVal", functions.col("index").mod(5).equalTo(0)).withColumn("w", functions.col("index").mod(3));
    Dataset<Row> many = spark.read().format("idx").option("imageFormat", "vector").option("recordsPerPartition", 500)
        .load(path).where("index < 1000").withColumn("isVal", functions.col("index").mod(5).equalTo(0))
        .withColumn("w", functions.col("index").mod(3));
    assertTrue(many.rdd().getNumPartitions() > 2, "more partitions than workers: packed first");
    List<float[]> weights = new ArrayList<>();
    for (Object[] route : new Object[][] {{"barrier", few}, {"driver", few}, {"barrier", many}}) {
      @SuppressWarnings("unchecked")
      Dataset<Row> data = (Dataset<Row>) route[1];
      CnnClassifier clf = new CnnClassifier().setModel("softmax-regression").setOptimizer("sgd").setLearningRate(0.5)
          .setBatchSize(50).setMaxIter(4).setKeepProb(1.0).setNumWorkers(2).setSyncMode((String) route[0]).setSeed(7)
          .setValidationIndicatorCol("isVal").setValidationInterval(2).setWeightCol("w");   // weighted blocks too
      CnnClassificationModel model = clf.fit(data);
      assertEquals(4, model.summary().totalIterations(), route[0] + " mode");
      assertEquals(2, model.summary().validationIterations().length, route[0] + " mode");
      assertEquals(20, model.transform(data.limit(20)).where("prediction >= 0").count());
      weights.add(model.weights());
    }
    return weights;
  }

  @Test
  void everyRouteTrainsWithKryo() {
    SparkSession spark = kryo(false, "");
    try {
      List<float[]> w = fitEveryRoute(spark);
      assertArrayEquals(w.get(0), w.get(1), 1e-5f, "barrier and driver modes agree");
    } finally {
      spark.stop();
    }
  }

  @Test
  void registrationRequiredNeedsTheRegistrator() {
    SparkSession spark = kryo(true, "");
    try {
      Exception e = assertThrows(Exception.class, () -> fitEveryRoute(spark));
      assertTrue(e.toString().contains("Class is not registered: dev.convspark.ml.training."), e.toString());
    } finally {
      spark.stop();
    }
    SparkSession registered = kryo(true, CnnKryoRegistrator.class.getName());
    try {
      fitEveryRoute(registered);
    } finally {
      registered.stop();
    }
  }
}
