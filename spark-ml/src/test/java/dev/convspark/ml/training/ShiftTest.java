package dev.convspark.ml.training;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.Set;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The training images' random shifts: where each pixel lands, the zeros, the range of the draws. */
class ShiftTest {

  private static final int H = 4;
  private static final int W = 5;
  private static final int C = 2;

  /** Pixel (r, c), channel k of an image whose values name their place: 1 + r * 100 + c * 10 + k. */
  private static float[] image(int at, int length) {
    float[] x = new float[length];
    for (int r = 0; r < H; r++) {
      for (int c = 0; c < W; c++) {
        for (int k = 0; k < C; k++) {
          x[at + (r * W + c) * C + k] = 1 + r * 100 + c * 10 + k;
        }
      }
    }
    return x;
  }

  @Test
  void eachPixelMovesByTheShiftAndTheUncoveredOnesAreZero() {
    Shift s = new Shift(H, W, C, 2);
    int at = 7;
    float[] x = image(at, at + H * W * C + 3);
    float[] before = x.clone();
    s.move(x, at, 1, -2, new float[H * W * C]);
    for (int r = 0; r < H; r++) {
      for (int c = 0; c < W; c++) {
        for (int k = 0; k < C; k++) {
          int sr = r - 1;
          int sc = c + 2;
          float expected = sr >= 0 && sc < W ? 1 + sr * 100 + sc * 10 + k : 0f;
          assertEquals(expected, x[at + (r * W + c) * C + k], "pixel (" + r + ", " + c + "), channel " + k);
        }
      }
    }
    for (int i = 0; i < at; i++) {
      assertEquals(before[i], x[i], "before the image");
    }
    for (int i = at + H * W * C; i < x.length; i++) {
      assertEquals(before[i], x[i], "after the image");
    }
    float[] y = image(0, H * W * C);
    s.move(y, 0, 0, 0, new float[H * W * C]);
    assertArrayEquals(image(0, H * W * C), y, "no shift, no change");
  }

  @Test
  void drawsCoverTheRangeAndNoMore() {
    Shift s = new Shift(H, W, C, 1);
    SplittableRandom rnd = new SplittableRandom(3);
    Set<String> seen = new HashSet<>();
    float[] scratch = new float[H * W * C];
    for (int i = 0; i < 200; i++) {
      float[] x = image(0, H * W * C);
      s.apply(x, 0, rnd, scratch);
      // Pixel (1, 1), channel 0 (value 111) lands at (1 + dy, 1 + dx): inside the image for |d| <= 1.
      int found = -1;
      for (int p = 0; p < H * W; p++) {
        if (x[p * C] == 111f) {
          found = p;
        }
      }
      assertTrue(found >= 0, "pixel (1, 1) left the image");
      int dy = found / W - 1;
      int dx = found % W - 1;
      assertTrue(Math.abs(dy) <= 1 && Math.abs(dx) <= 1, "shift " + dy + ", " + dx);
      seen.add(dy + "," + dx);
    }
    assertEquals(9, seen.size(), "every shift in [-1, 1] x [-1, 1] drawn: " + seen);
  }
}
