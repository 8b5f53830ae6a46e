package dev.convspark.tensor.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.tensor.Padding;
import org.junit.jupiter.api.Test;

/**
 * The Winograd route's switch and reach; its sums are checked against the reference, on both
 * instruction sets, in {@code KernelParityTest}.
 */
class WinogradConvTest {

  @Test
  void theSwitchTakesTrueOrFalseAndRefusesAnythingElseNamingTheProperty() {
    assertTrue(WinogradConv.enabled("true"));
    assertFalse(WinogradConv.enabled("false"));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> WinogradConv.enabled("yes"));
    assertEquals("convspark.conv.winograd must be true or false but was 'yes'", e.getMessage());
  }

  @Test
  void takesStrideOneFiveByFiveKernelsOverSeveralChannelsOnly() {
    assertTrue(WinogradConv.applies(ConvGeometry.of(14, 14, 32, 5, 5, 1, Padding.SAME)), "MNIST's second layer");
    assertTrue(WinogradConv.applies(ConvGeometry.of(9, 7, 8, 5, 5, 1, Padding.VALID)));
    assertFalse(WinogradConv.applies(ConvGeometry.of(28, 28, 1, 5, 5, 1, Padding.SAME)), "one channel");
    assertFalse(WinogradConv.applies(ConvGeometry.of(14, 14, 32, 3, 3, 1, Padding.SAME)), "3 x 3");
    assertFalse(WinogradConv.applies(ConvGeometry.of(14, 14, 32, 5, 5, 2, Padding.SAME)), "stride 2");
  }

  @Test
  void theInputGradientIsTheForwardPlanOverTheOutputGradient() {
    ConvGeometry g = ConvGeometry.of(14, 14, 32, 5, 5, 1, Padding.SAME);
    WinogradConv forward = WinogradConv.forward(g, 64);
    WinogradConv back = WinogradConv.inputGradient(g, 64);
    assertEquals(49, forward.tiles);
    assertEquals(18, forward.paddedHeight);
    assertEquals(64, back.inChannels);
    assertEquals(32, back.outChannels);
    assertEquals(2, back.padTop, "a full convolution of SAME's output: 4 - 2");
    ConvGeometry valid = ConvGeometry.of(10, 9, 8, 5, 5, 1, Padding.VALID);
    assertEquals(4, WinogradConv.inputGradient(valid, 17).padTop, "VALID's input gradient pads by the kernel less one");
  }

  /**
   * The threads' ranges of a batch's tiles: every tile of every sample once, in order, no thread
   * without tiles, whole samples where they are enough; with 16 threads and a batch of 50, the
   * busiest thread within 8% of the mean (it was 28% over with whole samples).
   */
  @Test
  void tileRangesShareEveryTileOnceAndEvenly() {
    for (int n : new int[] {1, 2, 3, 7, 50, 64}) {
      for (int tiles : new int[] {1, 4, 49}) {
        for (int threads : new int[] {1, 2, 3, 8, 16}) {
          FastKernels.TileRanges r = new FastKernels.TileRanges(n, tiles, threads);
          String what = n + " samples of " + tiles + " tiles, " + threads + " threads";
          assertTrue(r.parts >= 1 && r.parts <= threads, what);
          int next = 0;
          int busiest = 0;
          for (int t = 0; t < r.parts; t++) {
            int count = 0;
            for (int s = r.firstSample(t); s <= r.lastSample(t); s++) {
              int from = r.tileFrom(t, s);
              int to = r.tileTo(t, s);
              assertEquals(next, s * tiles + from, what + ", thread " + t + ", sample " + s);
              assertTrue(to > from, what + ", thread " + t + ", sample " + s);
              next = s * tiles + to;
              count += to - from;
            }
            assertTrue(count > 0, what + ", thread " + t);
            busiest = Math.max(busiest, count);
          }
          assertEquals(n * tiles, next, what);
          if (n >= 8 * threads) {
            assertEquals(Math.min(threads, n), r.parts, what);
            for (int t = 0; t < r.parts; t++) {
              assertEquals(0, r.tileFrom(t, r.firstSample(t)), what + ": whole samples");
            }
          }
          if (n == 50 && tiles == 49 && threads == 16) {
            assertTrue(busiest <= 1.08 * 50 * 49 / 16, what + ": the busiest thread has " + busiest + " tiles");
          }
        }
      }
    }
  }
}
