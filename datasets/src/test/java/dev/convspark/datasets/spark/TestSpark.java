package dev.convspark.datasets.spark;

import org.apache.spark.sql.SparkSession;

/** One real local SparkSession for the module's tests (two cores, no UI). */
final class TestSpark {

  private static SparkSession session;

  private TestSpark() {
  }

  static synchronized SparkSession get() {
    if (session == null) {
      session = SparkSession.builder()
          .master("local[2]")
          .appName("convspark-datasets-tests")
          .config("spark.ui.enabled", "false")
          .config("spark.sql.shuffle.partitions", "4")
          .config("spark.driver.host", "127.0.0.1")
          .config("spark.sql.extensions", IdxSqlExtensions.class.getName())
          .getOrCreate();
    }
    return session;
  }
}
