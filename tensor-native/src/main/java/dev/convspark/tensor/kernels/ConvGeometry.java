package dev.convspark.tensor.kernels;

import dev.convspark.tensor.Padding;

/**
 * Where a sliding window goes over an NHWC image: input size, window, stride, padding, and the
 * output size that follows (TensorFlow semantics, see {@link Padding}).
 */
public record ConvGeometry(int height, int width, int channels, int kernelHeight, int kernelWidth,
                           int stride, int padTop, int padLeft, int outHeight, int outWidth) {

  /** The geometry for an input of the given size under {@code padding}. */
  public static ConvGeometry of(int height, int width, int channels, int kernelHeight, int kernelWidth,
                                int stride, Padding padding) {
    return new ConvGeometry(height, width, channels, kernelHeight, kernelWidth, stride,
        padding.padBefore(height, kernelHeight, stride), padding.padBefore(width, kernelWidth, stride),
        padding.outputSize(height, kernelHeight, stride), padding.outputSize(width, kernelWidth, stride));
  }

  /** Length of one im2col row: kernelHeight * kernelWidth * channels. */
  public int patchSize() {
    return kernelHeight * kernelWidth * channels;
  }

  /** Floats in one input sample. */
  public int inputSize() {
    return height * width * channels;
  }

  /** Output pixels per sample. */
  public int outputPixels() {
    return outHeight * outWidth;
  }
}
