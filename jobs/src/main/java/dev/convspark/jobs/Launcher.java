package dev.convspark.jobs;

import java.util.Arrays;

/**
 * The Java side of {@code bin/convspark}: one subcommand per job. The shell launcher builds the
 * project, sets the JVM flags and calls this with the subcommand and its arguments.
 */
public final class Launcher {

  private Launcher() {
  }

  /** Runs one subcommand and exits with its status: 0 on success, 2 on a usage error, 1 on failure. */
  public static void main(String[] args) {
    System.exit(run(args));
  }

  private static int bench(String[] args) throws Exception {
    if (args.length == 0) {
      throw new UsageException("bench needs a target: engine, profile, idx, spark or scaling");
    }
    String[] rest = Arrays.copyOfRange(args, 1, args.length);
    return switch (args[0]) {
      case "engine" -> BenchEngineCommand.run(rest);
      case "profile" -> BenchProfileCommand.run(rest);
      case "idx" -> BenchIdxCommand.run(rest);
      case "spark" -> BenchSparkCommand.run(rest);
      case "scaling" -> BenchScalingCommand.run(rest);
      default -> throw new UsageException("unknown benchmark '" + args[0] + "' (expected engine, profile, idx, spark or scaling)");
    };
  }

  static int run(String[] args) {
    if (args.length == 0) {
      System.err.println("convspark: no subcommand given (try 'convspark help')");
      return 2;
    }
    String[] rest = Arrays.copyOfRange(args, 1, args.length);
    try {
      return switch (args[0]) {
        case "fetch-mnist" -> FetchMnistCommand.run(rest);
        case "bench" -> bench(rest);
        case "quickstart" -> QuickstartCommand.run(rest);
        case "train", "evaluate", "score" -> Jobs.run(args);
        case "cluster" -> ClusterCommand.run(rest);
        case "results-runs" -> ResultsCommand.run(rest);
        default -> throw new UsageException("unknown subcommand '" + args[0] + "' (try 'convspark help')");
      };
    } catch (UsageException e) {
      System.err.println("convspark: " + e.getMessage());
      return 2;
    } catch (Exception e) {
      System.err.println("convspark " + args[0] + " failed: " + e.getMessage());
      if (Boolean.getBoolean("convspark.debug")) {
        e.printStackTrace();
      }
      return 1;
    }
  }
}
