package dev.convspark.tensor;

/**
 * How a sliding window (convolution or pooling) treats the border, with TensorFlow's semantics.
 */
public enum Padding {
  /**
   * Output size {@code ceil(in / stride)}; the input is padded with zeros (for pooling: ignored
   * positions), the extra row or column going to the bottom and right when the total is odd.
   */
  SAME,
  /** No padding: output size {@code ceil((in - window + 1) / stride)}, only whole windows. */
  VALID;

  /** Output length along one axis, or a value {@code < 1} when the window does not fit. */
  public int outputSize(int in, int window, int stride) {
    return switch (this) {
      case SAME -> (in + stride - 1) / stride;
      case VALID -> in < window ? 0 : (in - window) / stride + 1;
    };
  }

  /** Zeros added before the first element along one axis (top or left). */
  public int padBefore(int in, int window, int stride) {
    if (this == VALID) {
      return 0;
    }
    int out = outputSize(in, window, stride);
    int total = Math.max((out - 1) * stride + window - in, 0);
    return total / 2;
  }
}
