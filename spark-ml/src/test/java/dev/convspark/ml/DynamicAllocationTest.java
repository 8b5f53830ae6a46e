package dev.convspark.ml;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.apache.spark.SparkConf;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;

/**
 * Training on a Spark with dynamic allocation on, as many managed clusters start by default: Spark
 * runs no barrier stage there, so {@code syncMode=barrier} is refused up front, naming the param
 * and the conf, and {@code syncMode=driver} trains. On a local master Spark applies dynamic
 * allocation only with {@code spark.dynamicAllocation.testing}, which this test sets.
 */
class DynamicAllocationTest {

  @Test
  void barrierIsRefusedNamingTheParamAndDriverModeTrains() {
    SparkSession spark = LocalSessions.builder("convspark-dynamic-allocation")
        .config("spark.dynamicAllocation.enabled", "true").config("spark.dynamicAllocation.testing", "true")
        .getOrCreate();
    try {
      Dataset<Row> train = spark.read().format("idx").option("imageFormat", "vector")
          .load(LocalSessions.mnist("train-images-idx3-ubyte")).limit(500);
      CnnClassifier clf = new CnnClassifier().setModel("softmax-regression").setOptimizer("sgd").setLearningRate(0.5)
          .setBatchSize(50).setMaxIter(5).setKeepProb(1.0).setNumWorkers(2);
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> clf.fit(train));
      assertTrue(e.getMessage().contains("syncMode=barrier") && e.getMessage().contains("syncMode=driver")
          && e.getMessage().contains("spark.dynamicAllocation.enabled=true"), e.getMessage());
      CnnClassificationModel model = clf.setSyncMode("driver").fit(train);
      assertEquals(5, model.summary().totalIterations());
      assertEquals(10, model.transform(train.limit(10)).select("prediction").count());
    } finally {
      spark.stop();
    }
  }

  @Test
  void dynamicAllocationCountsWhereSparkAppliesIt() {
    SparkConf on = new SparkConf().set("spark.dynamicAllocation.enabled", "true");
    assertThrows(IllegalArgumentException.class,
        () -> CnnClassifier.refuseDynamicAllocation(on.clone().setMaster("spark://host:7077")));
    assertThrows(IllegalArgumentException.class,
        () -> CnnClassifier.refuseDynamicAllocation(on.clone().setMaster("yarn")));
    assertThrows(IllegalArgumentException.class,
        () -> CnnClassifier.refuseDynamicAllocation(on.clone().setMaster("local-cluster[2,1,1024]")));
    assertDoesNotThrow(() -> CnnClassifier.refuseDynamicAllocation(on.clone().setMaster("local[2]")));
    assertDoesNotThrow(() -> CnnClassifier.refuseDynamicAllocation(on.clone().setMaster("local")));
    assertDoesNotThrow(() -> CnnClassifier.refuseDynamicAllocation(new SparkConf().setMaster("yarn")));
    assertDoesNotThrow(() -> CnnClassifier.refuseDynamicAllocation(
        new SparkConf().setMaster("yarn").set("spark.dynamicAllocation.enabled", "false")));
  }
}
