package dev.convspark.ml;

import dev.convspark.datasets.mnist.MnistArrays;
import org.apache.spark.sql.SparkSession;

/** What the tests' local sessions share: two cores, no UI, the driver on the loopback address. */
final class LocalSessions {

  private LocalSessions() {
  }

  /** A {@code local[2]} session's builder, for a test to add its own configuration to. */
  static SparkSession.Builder builder(String appName) {
    return SparkSession.builder().master("local[2]").appName(appName)
        .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1");
  }

  /** The path of one of the MNIST files the build fetched. */
  static String mnist(String file) {
    return MnistArrays.defaultDir().toAbsolutePath().resolve(file).toString();
  }
}
