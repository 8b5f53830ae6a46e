package dev.convspark.jobs;

import java.nio.file.Path;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;

/** Tests that run the jobs in their own JVM on one local session, stopped after the class. */
abstract class OnLocalSession {

  static SparkSession spark;

  @TempDir
  Path tmp;

  @BeforeAll
  static void start() {
    spark = InProcessJobs.startSession();
  }

  @AfterAll
  static void stop() {
    InProcessJobs.stopSession(spark);
  }
}
