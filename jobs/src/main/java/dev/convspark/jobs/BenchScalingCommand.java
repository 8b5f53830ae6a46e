package dev.convspark.jobs;

import dev.convspark.jobs.scaling.ScalingSimulator;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * {@code convspark bench scaling}: weak scaling of barrier training over a simulated network, star
 * and ring side by side (see {@link ScalingSimulator}).
 */
final class BenchScalingCommand {

  private BenchScalingCommand() {
  }

  static int run(String[] args) throws IOException {
    List<Integer> workers = List.of(1, 2, 4, 8, 16);
    List<Integer> batches = List.of(100, 50);
    List<String> topologies = List.of("star", "ring");
    double linkGbps = 10;
    int steps = 6;
    int warmup = 2;
    double scale = 0;
    int threads = Runtime.getRuntime().availableProcessors();
    Path json = null;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--workers" -> workers = Args.intList(args, ++i, "--workers", 1, 64);
        case "--batch-per-worker" -> batches = Args.intList(args, ++i, "--batch-per-worker", 1, 10_000);
        case "--link-gbps" -> linkGbps = Args.doubleValue(args, ++i, "--link-gbps", 0.01, 1000);
        case "--steps" -> steps = Args.intValue(args, ++i, "--steps", 1, 1000);
        case "--warmup" -> warmup = Args.intValue(args, ++i, "--warmup", 0, 1000);
        case "--time-scale" -> scale = Args.doubleValue(args, ++i, "--time-scale", 1, 1000);
        case "--threads" -> threads = Args.intValue(args, ++i, "--threads", 1, 1024);
        case "--topology" -> {
          topologies = List.of(Args.value(args, ++i, "--topology").split(","));
          for (String t : topologies) {
            if (!t.equals("star") && !t.equals("ring")) {
              throw new UsageException("--topology must list star and/or ring, not '" + t + "'");
            }
          }
        }
        case "--json" -> json = Path.of(Args.value(args, ++i, "--json"));
        case "-h", "--help" -> {
          System.out.println("usage: convspark bench scaling [--workers 1,2,4,8,16] [--link-gbps 10]\n"
              + "                             [--batch-per-worker 100,50] [--topology star,ring] [--steps 6]\n"
              + "                             [--warmup 2] [--time-scale N] [--threads CORES] [--json FILE]\n"
              + "  Weak scaling of barrier training, simulated: N real gradient exchanges (the estimator's\n"
              + "  classes) over loopback, each worker's link capped at --link-gbps (both directions), each\n"
              + "  step's computation replaced by a wait of the deep-mnist step measured here first on\n"
              + "  --threads threads at the per-worker batch (with the backward pass's timing, so the\n"
              + "  exchange overlaps it as in training). Waits and links slowed by the time scale (default:\n"
              + "  the number of workers) so that a few cores host 16 workers; figures are scaled back.\n"
              + "  Prints per topology and N: step time, exchange time not hidden by computation, weak-\n"
              + "  scaling efficiency (one worker's step time over N workers'), and the time the exchange\n"
              + "  needs on the wire at the link rate (the analytic bound).");
          return 0;
        }
        default -> throw new UsageException("bench scaling: unknown argument '" + args[i] + "'");
      }
    }
    List<Map<String, Object>> rows = new ScalingSimulator(linkGbps, threads, steps, warmup, scale)
        .run(workers, batches, topologies, System.out);
    if (json != null) {
      Files.writeString(json, Json.write(Map.of("rows", rows)));
      System.out.println("wrote " + json);
    }
    return 0;
  }
}
