package dev.convspark.tensor.backend;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * How long {@link GpuCheck}'s parity checks wait on their CPU reference at each thread count
 * ({@link CpuBackend#reference(int)}), with no GPU: the fast CPU backend stands in for the GPU,
 * so the time is the reference's but for a small share. Prints one row a thread count (every
 * check's seconds, those of deep-mnist's training steps, the largest error) and whether every
 * check's error is the same as on the first count, which it must be: the threads share a
 * product's rows, not its sums. {@code bin/convspark bench reference [--threads 1,2]} runs it.
 */
public final class ReferenceCheck {

  private ReferenceCheck() {
  }

  public static void main(String[] args) {
    int[] threads = {1, Runtime.getRuntime().availableProcessors()};
    if (args.length == 2 && args[0].equals("--threads") && args[1].matches("[1-9][0-9]{0,3}(,[1-9][0-9]{0,3})*")) {
      threads = Arrays.stream(args[1].split(",")).mapToInt(Integer::parseInt).toArray();
    } else if (args.length != 0) {
      System.out.println("usage: ReferenceCheck [--threads N,M,...] (whole numbers from 1) but was '"
          + String.join(" ", args) + "'");
      System.exit(2);
      return;
    }
    System.out.println("| reference threads | every check, s | deep-mnist's training steps, s | largest relative error"
        + " | every error as on " + threads[0] + (threads[0] == 1 ? " thread" : " threads") + " |");
    System.out.println("| --- | --- | --- | --- | --- |");
    List<Double> first = null;
    boolean same = true;
    try (CpuBackend fast = CpuBackend.create()) {
      for (int t : threads) {
        List<Double> errors = new ArrayList<>();
        double[] steps = {0};
        long[] last = {System.nanoTime()};
        long start = last[0];
        try (CpuBackend reference = CpuBackend.reference(t)) {
          GpuCheck.allParity(fast, reference, c -> {
            long now = System.nanoTime();
            // networkParity hands over its checks when its 20 steps are done: their time is the first one's.
            if (c.what().startsWith("deep-mnist (batch 50)")) {
              steps[0] += (now - last[0]) / 1e9;
            }
            last[0] = now;
            errors.add(c.error());
          });
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        boolean sameHere = first == null || first.equals(errors);
        same &= sameHere;
        if (first == null) {
          first = errors;
        }
        System.out.printf(Locale.ROOT, "| %d | %.1f | %.1f | %.2e | %s |%n", t, seconds, steps[0],
            errors.stream().mapToDouble(Double::doubleValue).max().orElse(0), sameHere ? "yes" : "NO");
      }
    }
    System.exit(same ? 0 : 1);
  }
}
