package dev.convspark.ml;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.datasets.mnist.MnistArrays;
import java.nio.file.Files;
import java.nio.file.Path;
import org.apache.spark.ml.evaluation.MulticlassClassificationEvaluator;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;

/**
 * Barrier training across two executor JVMs of a real {@code local-cluster}: the gradient
 * exchange crosses process boundaries over TCP.
 */
class MultiProcessTrainingTest {

  @Test
  void barrierTrainingRunsAcrossTwoExecutorProcesses() throws Exception {
    String sparkHome = System.getenv("SPARK_HOME");
    Files.createDirectories(Path.of(sparkHome, "jars"));
    SparkSession spark = SparkSession.builder()
        .master("local-cluster[2,1,1024]")
        .appName("convspark-ml-multiprocess")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.executor.extraClassPath", System.getProperty("java.class.path"))
        .config("spark.executor.extraJavaOptions", String.join(" ",
            java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments().stream()
                .filter(a -> a.startsWith("--add-") || a.startsWith("-XX:+IgnoreUnrecognized") || a.startsWith("-Dio.netty"))
                .toList()))
        .getOrCreate();
    try {
      Path mnist = MnistArrays.defaultDir().toAbsolutePath();
      Dataset<Row> train = spark.read().format("idx").option("imageFormat", "vector")
          .load(mnist.resolve("train-images-idx3-ubyte").toString()).limit(6000);
      Dataset<Row> test = spark.read().format("idx").option("imageFormat", "vector")
          .load(mnist.resolve("t10k-images-idx3-ubyte").toString()).limit(2000);
      CnnClassificationModel m = new CnnClassifier().setModel("softmax-regression").setOptimizer("sgd")
          .setLearningRate(0.5).setBatchSize(100).setMaxIter(250).setNumWorkers(2).fit(train);
      assertEquals(2, spark.sparkContext().getExecutorIds().size(), "two executor processes");
      double acc = new MulticlassClassificationEvaluator().setMetricName("accuracy").evaluate(m.transform(test));
      assertTrue(acc >= 0.85, "test accuracy after multi-process training " + acc);
    } finally {
      spark.stop();
    }
  }
}
