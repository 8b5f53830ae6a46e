package dev.convspark.tensor;

import java.util.Arrays;

/**
 * The shape of one sample as it flows through a network, batch dimension excluded: either
 * {@code [height, width, channels]} (NHWC images, the layout used throughout the engine) or
 * {@code [features]}.
 */
public final class Shape {

  private final int[] dims;

  private Shape(int[] dims) {
    for (int d : dims) {
      if (d < 1) {
        throw new IllegalArgumentException("every dimension must be >= 1 but shape was " + Arrays.toString(dims));
      }
    }
    this.dims = dims;
  }

  /** An image shape, height x width x channels. */
  public static Shape image(int height, int width, int channels) {
    return new Shape(new int[] {height, width, channels});
  }

  /** A flat vector of {@code n} features. */
  public static Shape vector(int n) {
    return new Shape(new int[] {n});
  }

  /** True for {@code [height, width, channels]}. */
  public boolean isImage() {
    return dims.length == 3;
  }

  /** Height; only for image shapes. */
  public int height() {
    requireImage();
    return dims[0];
  }

  /** Width; only for image shapes. */
  public int width() {
    requireImage();
    return dims[1];
  }

  /** Channels; only for image shapes. */
  public int channels() {
    requireImage();
    return dims[2];
  }

  /** Number of floats in one sample. */
  public int size() {
    int s = 1;
    for (int d : dims) {
      s = Math.multiplyExact(s, d);
    }
    return s;
  }

  /** A copy of the dimensions. */
  public int[] dims() {
    return dims.clone();
  }

  private void requireImage() {
    if (!isImage()) {
      throw new IllegalStateException("shape " + this + " is not an image shape [height, width, channels]");
    }
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof Shape s && Arrays.equals(dims, s.dims);
  }

  @Override
  public int hashCode() {
    return Arrays.hashCode(dims);
  }

  /** {@code 28x28x1} or {@code 3136}. */
  @Override
  public String toString() {
    StringBuilder b = new StringBuilder();
    for (int i = 0; i < dims.length; i++) {
      b.append(i == 0 ? "" : "x").append(dims[i]);
    }
    return b.toString();
  }
}
