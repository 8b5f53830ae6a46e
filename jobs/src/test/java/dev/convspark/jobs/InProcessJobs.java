package dev.convspark.jobs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import org.apache.spark.sql.SparkSession;

/** The jobs run in the test's JVM (on its active Spark session, if any), stderr captured. */
final class InProcessJobs {

  private InProcessJobs() {
  }

  /** A local session made the active one, which the jobs then run on. */
  static SparkSession startSession() {
    SparkSession spark = SparkSession.builder().master("local[2]").config("spark.ui.enabled", "false").getOrCreate();
    SparkSession.setActiveSession(spark);
    return spark;
  }

  /** Stops {@code spark}, so that a later test class starts a session of its own. */
  static void stopSession(SparkSession spark) {
    spark.stop();
    SparkSession.clearActiveSession();
  }

  /** A job's exit status and what it printed on stderr. */
  record Result(int status, String err) {
  }

  static Result run(String... args) {
    PrintStream old = System.err;
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    System.setErr(new PrintStream(err, true));
    try {
      int rc = Jobs.run(args);
      return new Result(rc, err.toString());
    } finally {
      System.setErr(old);
    }
  }

  /** Runs the job and checks that it ends well. */
  static void ok(String... args) {
    Result r = run(args);
    assertEquals(0, r.status(), String.join(" ", args) + ": " + r.err());
  }

  /** Runs the job and checks that it is refused as a usage error (status 2) saying {@code expected}. */
  static void assertUsageError(String expected, String... args) {
    assertFails(2, expected, args);
  }

  /** Runs the job and checks that it exits with {@code status} saying {@code expected}. */
  static void assertFails(int status, String expected, String... args) {
    Result r = run(args);
    assertEquals(status, r.status(), "exit status of " + String.join(" ", args) + ": " + r.err());
    assertTrue(r.err().contains(expected), r.err());
  }
}
