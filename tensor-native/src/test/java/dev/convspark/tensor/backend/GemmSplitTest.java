package dev.convspark.tensor.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * How the GPU backend splits a matrix product over k ({@link CudaBackend#kSplit}), in sgemm's 64 x
 * 64 tiles 16 deep and in the wide kernels' 128 x 64 tiles 8 deep; no GPU needed.
 */
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
  void wideTilesSplitAsTheirTileAndDepthSay() {
    // conv2 forward at batch 50 in 128 x 64 tiles: 77 tiles, four splits of 200 (25 steps of 8).
    assertEquals(200, CudaBackend.kSplit(9800, 64, 800, H200, 128, 64, 8));
    // conv2's weight gradient: 7 tiles, 38 splits of 264 rows.
    assertEquals(264, CudaBackend.kSplit(800, 64, 9800, H200, 128, 64, 8));
    // conv2 forward for 1,000 images: 1,532 tiles, not split.
    assertEquals(800, CudaBackend.kSplit(196_000, 64, 800, H200, 128, 64, 8));
    // k under 128 is never split, whatever the depth.
    assertEquals(120, CudaBackend.kSplit(128, 64, 120, H200, 128, 64, 8));
  }

  @Test
  void everySplitIsAWholeNumberOfStepsAndTheSplitsCoverKOnce() {
    SplittableRandom r = new SplittableRandom(7);
    for (int t = 0; t < 10_000; t++) {
      int m = 1 + r.nextInt(5000);
      int n = 1 + r.nextInt(5000);
      int k = 1 + r.nextInt(100_000);
      int sms = 1 + r.nextInt(200);
      boolean wide = r.nextBoolean();
      int tileM = wide ? 128 : 64;
      int depth = wide ? 8 : 16;
      int per = wide ? CudaBackend.kSplit(m, n, k, sms, tileM, 64, depth) : CudaBackend.kSplit(m, n, k, sms);
      String what = m + " x " + n + " x " + k + " on " + sms + ": " + per;
      if (per >= k) {
        assertEquals(k, per, what);
        continue;
      }
      long tiles = (long) ((m + tileM - 1) / tileM) * ((n + 63) / 64);
      int splits = (k + per - 1) / per;
      assertTrue(per % depth == 0 && per >= 64, what);
      assertTrue((long) (splits - 1) * per < k, what);
      assertTrue(tiles < 2L * sms && splits <= 65_535, what);
      assertTrue(tiles * splits <= 2L * sms + tiles, what);
    }
  }
}
