package dev.convspark.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.tensor.kernels.ThreadPool;
import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.Test;

/** The loop pool: every index exactly once, failures surface, and it works again afterwards. */
class ThreadPoolTest {

  @Test
  void everyIndexRunsExactlyOnceAcrossManyLoops() {
    try (ThreadPool pool = new ThreadPool(3)) {
      for (int loop = 0; loop < 2000; loop++) {
        int n = 1 + loop % 37;
        AtomicIntegerArray hits = new AtomicIntegerArray(n);
        pool.parallelFor(n, hits::incrementAndGet);
        for (int i = 0; i < n; i++) {
          assertEquals(1, hits.get(i), "index " + i + " of loop " + loop);
        }
      }
    }
  }

  @Test
  void moreThreadsThanCoresStillRunEveryIndexOnceAndOnlyInItsOwnLoop() {
    // Workers the operating system runs late wake into a later loop, or into none.
    int threads = 4 * Runtime.getRuntime().availableProcessors() + 1;
    try (ThreadPool pool = new ThreadPool(threads)) {
      for (int loop = 0; loop < 500; loop++) {
        int n = 1 + loop % 53;
        int current = loop;
        AtomicIntegerArray hits = new AtomicIntegerArray(n);
        pool.parallelFor(n, i -> {
          hits.incrementAndGet(i);
          if (current % 7 == 0) {
            Thread.yield();
          }
        });
        for (int i = 0; i < n; i++) {
          assertEquals(1, hits.get(i), "index " + i + " of loop " + loop + " on " + threads + " threads");
        }
      }
    }
  }

  @Test
  void aFailureInAnyThreadIsRethrownAndThePoolStaysUsable() {
    try (ThreadPool pool = new ThreadPool(2)) {
      IllegalStateException e = assertThrows(IllegalStateException.class, () -> pool.parallelFor(100, i -> {
        if (i == 57) {
          throw new IllegalStateException("boom at 57");
        }
      }));
      assertEquals("boom at 57", e.getMessage());
      AtomicIntegerArray hits = new AtomicIntegerArray(10);
      pool.parallelFor(10, hits::incrementAndGet);
      for (int i = 0; i < 10; i++) {
        assertEquals(1, hits.get(i));
      }
    }
  }

  @Test
  void badThreadCountIsRefused() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new ThreadPool(0));
    assertTrue(e.getMessage().contains("threads must be >= 1"), e.getMessage());
  }
}
