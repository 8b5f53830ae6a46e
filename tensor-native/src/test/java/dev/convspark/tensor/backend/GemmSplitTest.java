package dev.convspark.tensor.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** How the GPU backend splits a matrix product over k ({@link CudaBackend#kSplit}); no GPU needed. */
class GemmSplitTest {

  private static final int H200 = 132;

  @Test
  void productsThatFillTheGpuOrHaveAShortKAreNotSplit() {
    // conv2 forward at batch 512: 1,568 tiles of 64 x 64 for 132 multiprocessors.
    assertEquals(800, CudaBackend.kSplit(100_352, 64, 800, H200));
    // dense2's weight gradient: k = 50, under 8 steps of 16.
    assertEquals(50, CudaBackend.kSplit(1024, 10, 50, H200));
  }

  @Test
  void deepMnistsWeightGradientsAreSplitIntoShortRuns() {
    // conv1: one tile, 39,200 rows: 245 blocks of 160.
    assertEquals(160, CudaBackend.kSplit(25, 32, 39_200, H200));
    // conv2: 13 tiles, 9,800 rows: 21 splits of 480 (two blocks per multiprocessor).
    assertEquals(480, CudaBackend.kSplit(800, 64, 9800, H200));
  }

  @Test
  void productsWithUnderTwoTilesPerMultiprocessorAreSplitToo() {
    // conv2 forward at batch 50: 154 tiles for 132 multiprocessors, two splits of 400.
    assertEquals(400, CudaBackend.kSplit(9800, 64, 800, H200));
  }

  @Test
  void everySplitIsAWholeNumberOfStepsAndTheSplitsCoverKOnce() {
    SplittableRandom r = new SplittableRandom(7);
    for (int t = 0; t < 10_000; t++) {
      int m = 1 + r.nextInt(5000);
      int n = 1 + r.nextInt(5000);
      int k = 1 + r.nextInt(100_000);
      int sms = 1 + r.nextInt(200);
      int per = CudaBackend.kSplit(m, n, k, sms);
      String what = m + " x " + n + " x " + k + " on " + sms + ": " + per;
      if (per >= k) {
        assertEquals(k, per, what);
        continue;
      }
      long tiles = (long) ((m + 63) / 64) * ((n + 63) / 64);
      int splits = (k + per - 1) / per;
      assertTrue(per % 16 == 0 && per >= 64, what);
      assertTrue((long) (splits - 1) * per < k, what);
      assertTrue(tiles < 2L * sms && splits <= 65_535, what);
      assertTrue(tiles * splits <= 2L * sms + tiles, what);
    }
  }
}
