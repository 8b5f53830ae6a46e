package dev.convspark.jobs.scaling;

import dev.convspark.ml.exchange.GradientExchange;
import dev.convspark.ml.exchange.RingAllreduce;
import dev.convspark.ml.exchange.StarAllreduce;
import dev.convspark.ml.exchange.Wire;
import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.kernels.FastKernels;
import java.io.IOException;
import java.io.PrintStream;
import java.net.ServerSocket;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Weak scaling of barrier training over a simulated network. N workers in this JVM, each a real
 * gradient exchange of the estimator ({@link StarAllreduce} or {@link RingAllreduce}) over
 * loopback sockets, each worker's connections capped at the link rate in both directions
 * ({@link LinkCap}); each step's computation is a replay of a deep-mnist step measured here first
 * ({@link StepProfile}): the same waits, and the backward pass's announcements of which gradients
 * are final, at the same moments, so the exchange overlaps the computation as it does in training.
 * Waits and link rate are both slowed by one factor (by default the number of workers) so that a
 * machine of two cores can host 16 workers' sockets, threads and summing; every figure is scaled
 * back. A worker's step is then exactly what {@code BarrierTraining} runs: {@code beginStep}, the
 * gradient, {@code step} (the exchange, then the update).
 */
public final class ScalingSimulator {

  private static final String SECRET = "bench-scaling";
  private static final int TIMEOUT_MS = 600_000;

  private final double linkGbps;
  private final int threads;
  private final int steps;
  private final int warmup;
  private final double fixedScale;

  /**
   * @param threads the threads of the measured step (a worker's executor cores)
   * @param scale   the slow-down factor, or 0 for the number of workers
   */
  public ScalingSimulator(double linkGbps, int threads, int steps, int warmup, double scale) {
    this.linkGbps = linkGbps;
    this.threads = threads;
    this.steps = steps;
    this.warmup = warmup;
    this.fixedScale = scale;
  }

  /** Runs every topology at every worker count, per batch; prints the table to {@code out}; returns its rows. */
  public List<Map<String, Object>> run(List<Integer> workers, List<Integer> batches, List<String> topologies,
                                       PrintStream out) throws IOException {
    List<Map<String, Object>> rows = new ArrayList<>();
    out.printf(Locale.ROOT, "scaling simulator: deep-mnist, links of %s Gbit/s (each worker, each direction), %s;"
        + " the step measured here on %d threads (%s)%n", fmt(linkGbps), "float32 gradients", threads,
        FastKernels.isa());
    for (int batch : batches) {
      StepProfile p = StepProfile.measure(batch, threads, 10, 9);
      double computeMs = (p.computeNanos() + p.updateNanos()) / 1e6;
      double bytes = 4.0 * p.paramCount();
      // deep-mnist's dense layers, 1024 x 3136 + 1024 and 10 x 1024 + 10, end the parameter array.
      int dense = 1024 * 3136 + 1024 + 10 * 1024 + 10;
      out.printf(Locale.ROOT, "batch %d per worker: gradient %.1f ms + update %.1f ms; the dense layers' gradients"
              + " (%.1f of %.1f MB) final at %.0f%% of the gradient's computation%n", batch, p.computeNanos() / 1e6,
          p.updateNanos() / 1e6, 4.0 * dense / 1e6, bytes / 1e6, 100 * p.readyFraction(p.paramCount() - dense));
      out.printf(Locale.ROOT, "%-8s %7s %12s %10s %10s %12s %10s %8s%n", "topology", "workers", "batch/worker",
          "step (ms)", "exposed", "efficiency", "wire (ms)", "scale");
      // Efficiency is against one worker, simulated too (no exchange: the same for both topologies).
      double single = simulate("ring", 1, p, 1);
      for (String topology : topologies) {
        for (int n : workers) {
          double scale = n == 1 ? 1 : fixedScale > 0 ? fixedScale : n;
          double stepMs = n == 1 ? single : simulate(topology, n, p, scale);
          double wireMs = (topology.equals("star") ? (n - 1) : 2.0 * (n - 1) / n) * bytes / (linkGbps * 1e9 / 8) * 1e3;
          Map<String, Object> row = new LinkedHashMap<>();
          row.put("topology", topology);
          row.put("workers", n);
          row.put("batch_per_worker", batch);
          row.put("link_gbps", linkGbps);
          row.put("step_ms", stepMs);
          row.put("exposed_exchange_ms", Math.max(0, stepMs - computeMs));
          row.put("efficiency", single / stepMs);
          row.put("wire_ms", wireMs);
          row.put("compute_ms", computeMs);
          row.put("time_scale", scale);
          rows.add(row);
          out.printf(Locale.ROOT, "%-8s %7d %12d %10.1f %10.1f %11.1f%% %10.1f %8s%n", topology, n, batch, stepMs,
              Math.max(0, stepMs - computeMs), 100 * single / stepMs, wireMs, fmt(scale));
        }
      }
    }
    out.println("step: one worker's step time, scaled back; exposed: what the exchange adds to the computation and"
        + " update; efficiency: one worker's step time over N workers'; wire: the gradient's bytes on the busiest"
        + " link over its rate (star: (N-1) x, ring: 2 (N-1)/N x the gradient each way).");
    return rows;
  }

  private static String fmt(double v) {
    return v == Math.rint(v) ? Long.toString((long) v) : Double.toString(v);
  }

  /** The median over the timed steps of one worker's step time in ms, scaled back. */
  private double simulate(String topology, int n, StepProfile p, double scale) throws IOException {
    double bytesPerSecond = linkGbps * 1e9 / 8 / scale;
    ExecutorService pool = Executors.newCachedThreadPool(r -> {
      Thread t = new Thread(r, "convspark-scaling-worker");
      t.setDaemon(true);
      return t;
    });
    ServerSocket[] servers = new ServerSocket[n];
    try {
      for (int r = 0; r < n; r++) {
        servers[r] = Wire.listen("127.0.0.1");
      }
      List<Future<double[]>> futures = new ArrayList<>();
      for (int r = 0; r < n; r++) {
        int rank = r;
        futures.add(pool.submit(() -> {
          Wire.Shaper link = new LinkCap(bytesPerSecond);
          try (GradientExchange ex = open(topology, rank, n, servers, link)) {
            return worker(ex, p, scale);
          }
        }));
      }
      double[] times = futures.get(0).get();
      for (Future<double[]> f : futures) {
        f.get();
      }
      java.util.Arrays.sort(times);
      return times[times.length / 2] / scale / 1e6;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted", e);
    } catch (ExecutionException e) {
      throw new IOException("bench scaling: a simulated worker failed: " + e.getCause(), e.getCause());
    } finally {
      pool.shutdownNow();
      for (ServerSocket s : servers) {
        if (s != null) {
          s.close();
        }
      }
    }
  }

  private static GradientExchange open(String topology, int rank, int n, ServerSocket[] servers, Wire.Shaper link)
      throws IOException {
    if (n == 1) {
      return null;
    }
    if (topology.equals("star")) {
      return rank == 0 ? StarAllreduce.hub(servers[0], n, SECRET, TIMEOUT_MS, TIMEOUT_MS, () -> false, link)
          : StarAllreduce.spoke(rank, n, "127.0.0.1", servers[0].getLocalPort(), SECRET, TIMEOUT_MS, link);
    }
    return RingAllreduce.join(rank, n, servers[rank], "127.0.0.1", servers[(rank + 1) % n].getLocalPort(), SECRET,
        TIMEOUT_MS, TIMEOUT_MS, () -> false, link);
  }

  /** One worker's steps as {@code BarrierTraining} runs them; the timed steps' durations in ns. */
  private double[] worker(GradientExchange ex, StepProfile p, double scale) throws IOException {
    ModelRunner runner = p.replay(scale);
    dev.convspark.tensor.optim.Optimizer optimizer = p.replayOptimizer(scale);
    float[] scratch = new float[p.paramCount()];
    // As in training: the update sharded between the workers where the exchange can (the ring).
    if (ex != null) {
      ex.shardUpdates(true);
    }
    double[] times = new double[steps];
    for (int s = 0; s < warmup + steps; s++) {
      long t0 = System.nanoTime();
      if (ex != null) {
        ex.beginStep(runner, optimizer, p.batch());
      }
      var g = runner.computeGradients(null, null, p.batch(), 1f, s, null, null);
      double[] stats = {g.lossSum(), g.correct(), g.count()};
      if (ex != null) {
        ex.step(runner, optimizer, scratch, stats, sums -> { });
      } else {
        GradientExchange.alone(runner, optimizer, stats, sums -> { });
      }
      if (s >= warmup) {
        times[s - warmup] = System.nanoTime() - t0;
      }
    }
    return times;
  }
}
