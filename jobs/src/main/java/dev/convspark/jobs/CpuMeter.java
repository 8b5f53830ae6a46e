package dev.convspark.jobs;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.DoubleSupplier;

/**
 * How much CPU other processes took while a benchmark repeat ran, measured as the PyTorch
 * reference measures its own ({@code ../shared/bench/cpumeter.py}): the machine's busy time from
 * {@code /proc/stat} less this process's CPU time, over the cores times the wall time. A repeat is
 * clean below {@value #CLEAN_FRACTION} of that, and before each one the meter waits for the
 * machine to be idle. Both sides of {@code bench compare} then keep the same repeats: those no
 * other process disturbed. Where {@code /proc/stat} cannot be read (not Linux), nothing is waited
 * for and every repeat counts as clean.
 */
final class CpuMeter {

  /** Above this share of the machine taken by other processes, a repeat is not clean. */
  static final double CLEAN_FRACTION = 0.03;
  /** A repeat starts once the machine was at least this idle over a sample ... */
  static final double IDLE_FRACTION = 0.95;
  /** ... of this many seconds ... */
  static final double SAMPLE_SECONDS = 2.0;
  /** ... or after this long, idle or not. */
  static final double MAX_WAIT_SECONDS = 180.0;
  /** At most this many attempts per clean repeat asked for. */
  static final int ATTEMPTS_PER_REPEAT = 4;
  /** The unit of {@code /proc/stat}'s times (USER_HZ), 100 on every Linux the JVM runs on. */
  private static final double TICKS_PER_SECOND = 100.0;
  private static final Path STAT = Path.of("/proc/stat");

  private final int cores;
  private final double busy0;
  private final double own0;
  private final long wall0;

  private CpuMeter() {
    cores = Runtime.getRuntime().availableProcessors();
    busy0 = busySeconds();
    own0 = ownSeconds();
    wall0 = System.nanoTime();
  }

  /** Starts measuring now. */
  static CpuMeter start() {
    return new CpuMeter();
  }

  /** What other processes took since {@link #start()}. */
  Sample stop() {
    double wall = (System.nanoTime() - wall0) / 1e9;
    double busy = busySeconds();
    double own = ownSeconds();
    if (Double.isNaN(busy - busy0) || Double.isNaN(own - own0) || wall <= 0) {
      return new Sample(wall, Double.NaN);
    }
    double foreign = Math.max(0, (busy - busy0) - (own - own0));
    return new Sample(wall, foreign / (cores * wall));
  }

  /**
   * One repeat's wall time and the share of the machine's CPU other processes took during it (NaN
   * where it cannot be known).
   */
  record Sample(double wallSeconds, double foreignFraction) {

    boolean clean() {
      return Double.isNaN(foreignFraction) || foreignFraction < CLEAN_FRACTION;
    }

    /** "foreign 0.4%", with " CONTAMINATED" when not clean, as the reference prints it. */
    String tag() {
      if (Double.isNaN(foreignFraction)) {
        return "foreign n/a";
      }
      return String.format(Locale.ROOT, "foreign %.1f%%%s", 100 * foreignFraction, clean() ? "" : " CONTAMINATED");
    }
  }

  /**
   * Runs {@code repeat} until {@code repeats} runs were clean or {@value #ATTEMPTS_PER_REPEAT}
   * times that many were made, waiting for an idle machine before each; prints each figure with
   * its tag under {@code label}. Returns the clean runs' figures, or every run's if none was clean.
   */
  static List<Double> cleanRepeats(int repeats, String label, DoubleSupplier repeat) {
    return cleanRepeats(repeats, label, repeat, CpuMeter::waitIdle);
  }

  /** {@link #cleanRepeats(int, String, DoubleSupplier)} with {@code beforeEach} run in place of {@link #waitIdle()}. */
  static List<Double> cleanRepeats(int repeats, String label, DoubleSupplier repeat, Runnable beforeEach) {
    List<Double> all = new ArrayList<>();
    List<Double> clean = new ArrayList<>();
    while (clean.size() < repeats && all.size() < ATTEMPTS_PER_REPEAT * repeats) {
      beforeEach.run();
      CpuMeter meter = start();
      double figure = repeat.getAsDouble();
      Sample s = meter.stop();
      all.add(figure);
      if (s.clean()) {
        clean.add(figure);
      }
      System.out.printf(Locale.ROOT, "%s repeat %d: %.1f (%s)%n", label, all.size() - 1, figure, s.tag());
    }
    if (clean.size() < all.size()) {
      System.out.printf(Locale.ROOT, "%s: %d of %d repeats clean%n", label, clean.size(), all.size());
    }
    return clean.isEmpty() ? all : clean;
  }

  /**
   * Waits until the machine was at least {@value #IDLE_FRACTION} idle over a
   * {@value #SAMPLE_SECONDS} s sample, or {@value #MAX_WAIT_SECONDS} s passed. Returns the
   * seconds waited beyond the first sample.
   */
  static double waitIdle() {
    if (Double.isNaN(busySeconds())) {
      return 0;
    }
    long end = System.nanoTime() + (long) (MAX_WAIT_SECONDS * 1e9);
    double waited = 0;
    while (true) {
      CpuMeter meter = start();
      try {
        Thread.sleep((long) (SAMPLE_SECONDS * 1000));
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return waited;
      }
      Sample s = meter.stop();
      if (1 - s.foreignFraction() >= IDLE_FRACTION || System.nanoTime() > end) {
        return waited;
      }
      waited += s.wallSeconds();
    }
  }

  /**
   * The machine's busy CPU seconds since boot: user, nice, system, irq, softirq and steal from the
   * first line of {@code /proc/stat} (idle and iowait left out); NaN where it cannot be read.
   */
  static double busySeconds() {
    try {
      return busySeconds(Files.readAllLines(STAT).get(0));
    } catch (IOException | RuntimeException e) {
      return Double.NaN;
    }
  }

  /** {@link #busySeconds()} from the {@code cpu} line of {@code /proc/stat}. */
  static double busySeconds(String cpuLine) {
    String[] f = cpuLine.trim().split("\\s+");
    if (!f[0].equals("cpu") || f.length < 9) {
      throw new IllegalArgumentException("not the total line of /proc/stat: '" + cpuLine + "'");
    }
    long ticks = 0;
    for (int i = 1; i <= 8; i++) {
      if (i != 4 && i != 5) {
        ticks += Long.parseLong(f[i]);
      }
    }
    return ticks / TICKS_PER_SECOND;
  }

  /** This process's CPU seconds, every thread's (the JIT's and the collector's too); NaN where unknown. */
  static double ownSeconds() {
    return ProcessHandle.current().info().totalCpuDuration().map(d -> d.toNanos() / 1e9).orElse(Double.NaN);
  }
}
