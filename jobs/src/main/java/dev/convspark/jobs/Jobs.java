package dev.convspark.jobs;

import java.util.Arrays;
import org.apache.spark.SparkConf;
import org.apache.spark.sql.SparkSession;

/**
 * The {@code spark-submit} entry point: {@code spark-submit --class dev.convspark.jobs.Jobs
 * jobs-all.jar JOB [ARGS]} with JOB one of {@code train}, {@code evaluate}, {@code score}. Each job
 * prints its usage with {@code --help}, exits with 2 on a usage error and 1 on a failure.
 */
public final class Jobs {

  private Jobs() {
  }

  /** Runs one job and exits with its status. */
  public static void main(String[] args) {
    int rc = run(args);
    if (rc != 0) {
      System.exit(rc);
    }
  }

  static int run(String[] args) {
    if (args.length == 0 || args[0].equals("--help") || args[0].equals("-h")) {
      System.out.println("usage: JOB [ARGS]   jobs: train, evaluate, score (each with --help)");
      return args.length == 0 ? 2 : 0;
    }
    String[] rest = Arrays.copyOfRange(args, 1, args.length);
    try {
      return switch (args[0]) {
        case "train" -> TrainJob.run(rest);
        case "evaluate" -> EvaluateJob.run(rest);
        case "score" -> ScoreJob.run(rest);
        default -> throw new UsageException("unknown job '" + args[0] + "' (expected train, evaluate or score)");
      };
    } catch (UsageException e) {
      System.err.println("convspark " + args[0] + ": " + e.getMessage());
      return 2;
    } catch (Exception e) {
      System.err.println("convspark " + args[0] + " failed: " + rootMessage(e));
      if (Boolean.getBoolean("convspark.debug")) {
        e.printStackTrace();
      }
      return 1;
    }
  }

  /** The most specific message in a chain of causes (Spark wraps task failures several times). */
  static String rootMessage(Throwable e) {
    String m = e.getMessage();
    for (Throwable t = e.getCause(); t != null; t = t.getCause()) {
      if (t.getMessage() != null && (t instanceof IllegalArgumentException || t instanceof ArithmeticException
          || t instanceof java.io.IOException)) {
        m = t.getMessage();
      }
    }
    return m;
  }

  /** The session of {@code spark-submit}, or a {@code local[*]} one when started without it. */
  static SparkSession session(String app) {
    scala.Option<SparkSession> active = SparkSession.getActiveSession();
    if (active.isDefined()) {
      return active.get();
    }
    SparkSession.Builder b = SparkSession.builder().appName(app);
    if (!new SparkConf().contains("spark.master")) {
      b = b.master("local[*]").config("spark.ui.enabled", "false");
    }
    return b.getOrCreate();
  }
}
