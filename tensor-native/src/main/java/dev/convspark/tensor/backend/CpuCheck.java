package dev.convspark.tensor.backend;

import dev.convspark.tensor.kernels.FastKernels;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The CPU side of the GPU machine's check, runnable with the engine's jars alone (no Maven, no
 * Spark): deep-mnist's training rate at batch 50 and 512 and its inference rate on the CPU backend
 * for each thread count asked for, on random inputs, timed as {@link GpuCheck#benchmark} times
 * (medians of 3 repeats after one unmeasured). {@code tensor-native/gpu-check.sh cpu} runs it and
 * then PyTorch's CPU path on the same thread counts ({@code gpu-torch.py --cpu}), which reads the
 * figures this writes ({@code --results FILE}) to print the ratios. It needs no GPU: it is how 8
 * and 16 threads are compared where only that machine has them.
 */
public final class CpuCheck {

  private CpuCheck() {
  }

  /** One thread count's figures, images/s. */
  public record Row(int threads, double train50, double train512, double infer) {
  }

  /**
   * Measures each thread count in turn: {@code steps} training steps of 50 per repeat, as many
   * images per repeat at batch 512 (at least 2 steps), and the 10,000-image inference.
   */
  public static List<Row> measure(int[] threads, int steps) {
    List<Row> rows = new ArrayList<>();
    for (int t : threads) {
      try (CpuBackend cpu = CpuBackend.create(t)) {
        double[] small = GpuCheck.benchmark(cpu, 50, steps);
        double[] large = GpuCheck.benchmark(cpu, 512, Math.max(2, steps * 50 / 512), false);
        rows.add(new Row(t, small[0], large[0], small[2]));
      }
    }
    return rows;
  }

  /** The thread counts of {@code --threads}: a comma-separated list of counts from 1 to 1024. */
  static int[] threads(String list) {
    String[] parts = list.split(",");
    int[] out = new int[parts.length];
    for (int i = 0; i < parts.length; i++) {
      try {
        out[i] = Integer.parseInt(parts[i].trim());
      } catch (NumberFormatException e) {
        out[i] = 0;
      }
      if (out[i] < 1 || out[i] > 1024) {
        throw new IllegalArgumentException("--threads must be a comma-separated list of counts from 1 to 1024,"
            + " such as 8,16, but was '" + list + "'");
      }
    }
    return out;
  }

  /** The figures as {@code gpu-torch.py --cpu} reads them: one {@code key value} per line. */
  static String results(List<Row> rows) {
    StringBuilder s = new StringBuilder("threads");
    for (int i = 0; i < rows.size(); i++) {
      s.append(i == 0 ? " " : ",").append(rows.get(i).threads());
    }
    s.append('\n');
    for (Row r : rows) {
      s.append(String.format(Locale.ROOT, "cpu_train50_%d %.1f%ncpu_train512_%d %.1f%ncpu_infer_%d %.1f%n",
          r.threads(), r.train50(), r.threads(), r.train512(), r.threads(), r.infer()));
    }
    return s.toString();
  }

  /** {@code CpuCheck [--threads 8,16] [--steps 100] [--results FILE]}; exit status 2 on a bad argument. */
  public static void main(String[] args) {
    int[] threads = {8, 16};
    int steps = 100;
    Path results = null;
    try {
      for (int i = 0; i < args.length; i++) {
        if (args[i].equals("--threads") && i + 1 < args.length) {
          threads = threads(args[++i]);
        } else if (args[i].equals("--steps") && i + 1 < args.length) {
          String v = args[++i];
          steps = v.matches("\\d{1,6}") ? Integer.parseInt(v) : 0;
          if (steps < 1) {
            throw new IllegalArgumentException("--steps must be a whole number from 1 to 999999 but was '" + v + "'");
          }
        } else if (args[i].equals("--results") && i + 1 < args.length) {
          results = Path.of(args[++i]);
        } else {
          throw new IllegalArgumentException("usage: CpuCheck [--threads 8,16] [--steps 100] [--results FILE]; '"
              + args[i] + "' is none of them");
        }
      }
    } catch (IllegalArgumentException e) {
      System.out.println(e.getMessage());
      System.exit(2);
      return;
    }
    System.out.println("CPU: " + Runtime.getRuntime().availableProcessors() + " logical cores; isa: "
        + FastKernels.describe() + ", java " + System.getProperty("java.version"));
    System.out.println("\n| deep-mnist on the CPU, convspark | training images/s, batch 50 | training, batch 512"
        + " | inference images/s (batches of 1000) |");
    System.out.println("| --- | --- | --- | --- |");
    List<Row> rows = new ArrayList<>();
    for (int t : threads) {
      Row r = measure(new int[] {t}, steps).get(0);
      rows.add(r);
      System.out.printf(Locale.ROOT, "| %d thread%s | %.0f | %.0f | %.0f |%n", t, t == 1 ? "" : "s", r.train50(),
          r.train512(), r.infer());
    }
    if (results != null) {
      try {
        Files.writeString(results, results(rows));
      } catch (IOException e) {
        System.out.println("cannot write " + results + ": " + e.getMessage());
        System.exit(1);
      }
    }
  }
}
