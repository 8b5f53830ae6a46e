package dev.convspark.ml.training;

import java.io.Serializable;
import java.util.SplittableRandom;

/**
 * Random shifts of the training images ({@code shiftRange}): each drawn image moved by a whole
 * number of pixels in {@code [-range, range]} along each axis, drawn from the step's sampling
 * stream, the pixels it uncovers set to 0. Images are {@code height x width x channels},
 * channel-last, as the engine takes them.
 */
public record Shift(int height, int width, int channels, int range) implements Serializable {

  /** Moves the image at {@code x[at ..]} by a shift drawn from {@code rnd}; {@code scratch} holds one image. */
  void apply(float[] x, int at, SplittableRandom rnd, float[] scratch) {
    int dy = rnd.nextInt(2 * range + 1) - range;
    int dx = rnd.nextInt(2 * range + 1) - range;
    move(x, at, dy, dx, scratch);
  }

  /** Moves the image at {@code x[at ..]} down by {@code dy} rows and right by {@code dx} columns. */
  void move(float[] x, int at, int dy, int dx, float[] scratch) {
    if (dy == 0 && dx == 0) {
      return;
    }
    int row = width * channels;
    java.util.Arrays.fill(scratch, 0, height * row, 0f);
    // Source columns [c0, c1) land at [c0 + dx, c1 + dx); source rows likewise.
    int c0 = Math.max(0, -dx);
    int c1 = Math.min(width, width - dx);
    for (int r = Math.max(0, -dy); r < Math.min(height, height - dy); r++) {
      System.arraycopy(x, at + r * row + c0 * channels, scratch, (r + dy) * row + (c0 + dx) * channels,
          (c1 - c0) * channels);
    }
    System.arraycopy(scratch, 0, x, at, height * row);
  }
}
