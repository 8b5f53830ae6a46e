package dev.convspark.jobs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** The benchmark's meter of other processes' CPU, against a real process spinning beside it. */
class CpuMeterTest {

  private static final int CORES = Runtime.getRuntime().availableProcessors();

  @Test
  void busyTimeIsUserNiceSystemIrqSoftirqAndSteal() {
    // user nice system idle iowait irq softirq steal guest guest_nice, in ticks of 1/100 s
    assertEquals(1.71, CpuMeter.busySeconds("cpu  100 20 30 4000 500 6 7 8 0 0"), 1e-9);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> CpuMeter.busySeconds("cpu0 100 20 30 4000 500 6 7 8 0 0"));
    assertTrue(e.getMessage().contains("/proc/stat"), e.getMessage());
  }

  @Test
  void anotherProcessSpinningMakesARepeatContaminated() throws Exception {
    assumeTrue(!Double.isNaN(CpuMeter.busySeconds()), "no /proc/stat here: every repeat counts as clean");
    CpuMeter.Sample s = whileSpinning(() -> sleep(1000));
    // One core of CORES busy the whole second, give or take its start-up.
    assertTrue(s.foreignFraction() > 0.5 / CORES, s.tag());
    if (CORES <= 16) {
      assertFalse(s.clean(), s.tag());
      assertTrue(s.tag().endsWith("CONTAMINATED"), s.tag());
    }
  }

  @Test
  void thisProcessesOwnThreadsAreNotForeign() throws Exception {
    assumeTrue(!Double.isNaN(CpuMeter.busySeconds()), "no /proc/stat here");
    CpuMeter meter = CpuMeter.start();
    double own0 = CpuMeter.ownSeconds();
    long end = System.nanoTime() + 1_000_000_000L;
    double x = 0;
    while (System.nanoTime() < end) {
      x += Math.sqrt(x + 1);
    }
    CpuMeter.Sample s = meter.stop();
    assertTrue(CpuMeter.ownSeconds() - own0 > 0.5, "the spinning thread's CPU time " + x);
    // This thread took one core for the whole second; none of it may count as foreign.
    assertTrue(s.foreignFraction() < 0.5 / CORES, s.tag());
  }

  @Test
  void aContaminatedRepeatIsRepeatedAndLeftOut() throws Exception {
    assumeTrue(!Double.isNaN(CpuMeter.busySeconds()), "no /proc/stat here");
    assumeTrue(CORES <= 16, "one spinning process is under the clean threshold on " + CORES + " cores");
    int[] attempts = {0};
    List<Double> figures = CpuMeter.cleanRepeats(1, "test", () -> {
      int attempt = attempts[0]++;
      if (attempt == 0) {
        whileSpinning(() -> sleep(500));
      } else {
        sleep(500);
      }
      return attempt;
    }, () -> { });
    assertTrue(attempts[0] >= 2 && attempts[0] <= CpuMeter.ATTEMPTS_PER_REPEAT, "attempts " + attempts[0]);
    assertFalse(figures.contains(0.0), "the contaminated first repeat was kept: " + figures);
  }

  /** Runs {@code body} metered while a shell loop spins in a process of its own. */
  private static CpuMeter.Sample whileSpinning(Runnable body) {
    Process spin;
    try {
      spin = new ProcessBuilder("sh", "-c", "while :; do :; done").start();
    } catch (java.io.IOException e) {
      throw new IllegalStateException("could not start sh", e);
    }
    try {
      sleep(200);
      CpuMeter meter = CpuMeter.start();
      body.run();
      return meter.stop();
    } finally {
      spin.destroyForcibly();
      try {
        spin.waitFor(10, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  private static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }
}
