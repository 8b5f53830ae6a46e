package dev.convspark.ml.feature;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Random;
import org.junit.jupiter.api.Test;

/** {@link ImagePixels#fit}: images of another size scaled to the model's, checked against what scaling must keep. */
class ImagePixelsTest {

  private static double[] random(int n, long seed) {
    Random r = new Random(seed);
    double[] a = new double[n];
    for (int i = 0; i < n; i++) {
      a[i] = r.nextInt(256) / 255.0;
    }
    return a;
  }

  private static double mean(double[] a) {
    double s = 0;
    for (double v : a) {
      s += v;
    }
    return s / a.length;
  }

  @Test
  void blocksShrinkToTheirValuesExactlyAndAShrinkKeepsTheMean() {
    ImagePixels in = new ImagePixels(28, 28, 3, true, "-");
    double[] small = random(28 * 28 * 3, 1);
    for (int f : new int[] {2, 3}) {
      // Each pixel as an f x f block.
      int side = 28 * f;
      double[] big = new double[side * side * 3];
      for (int y = 0; y < side; y++) {
        for (int x = 0; x < side; x++) {
          for (int k = 0; k < 3; k++) {
            big[(y * side + x) * 3 + k] = small[((y / f) * 28 + x / f) * 3 + k];
          }
        }
      }
      double[] back = in.fit(big, side, side);
      for (int i = 0; i < small.length; i++) {
        assertEquals(small[i], back[i], 1e-15, "block " + f + ", value " + i);
      }
    }
    // Not a whole ratio (70 x 45 to 28 x 28): every input pixel counts alike, so the mean stays.
    ImagePixels gray = new ImagePixels(28, 28, 1, true, "-");
    double[] odd = random(70 * 45, 2);
    assertEquals(mean(odd), mean(gray.fit(odd, 70, 45)), 1e-12);
  }

  @Test
  void aGrownImageInterpolatesBetweenItsPixelsAndAConstantOneStaysConstant() {
    ImagePixels in = new ImagePixels(4, 4, 1, true, "-");
    // 2 x 2 to 4 x 4: output centres at -0.25, 0.25, 0.75, 1.25 of the input, clamped at the edges.
    double[] grown = in.fit(new double[] {0, 1, 0, 1}, 2, 2);
    assertArrayEquals(new double[] {0, 0.25, 0.75, 1, 0, 0.25, 0.75, 1, 0, 0.25, 0.75, 1, 0, 0.25, 0.75, 1}, grown,
        1e-15);
    ImagePixels mixed = new ImagePixels(28, 28, 1, true, "-");
    double[] constant = new double[13 * 90];
    java.util.Arrays.fill(constant, 0.4);
    for (double v : mixed.fit(constant, 13, 90)) {
      assertEquals(0.4, v, 1e-12);
    }
  }
}
