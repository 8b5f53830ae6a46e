package dev.convspark.tensor.layers;

import dev.convspark.tensor.Shape;
import dev.convspark.tensor.kernels.Kernels;

/**
 * Views an image sample as a vector. NHWC samples are already contiguous, so this only copies; the
 * network lets it share its input buffer instead.
 */
public final class Flatten extends Layer {

  /** A flatten from {@code in} to a vector of the same size. */
  public Flatten(String name, Shape in) {
    super(name, in, Shape.vector(in.size()));
  }

  @Override
  public void forward(Kernels k, float[] params, float[] x, float[] y, int n, boolean training, long seed) {
    if (x != y) {
      System.arraycopy(x, 0, y, 0, n * inputShape().size());
    }
  }

  @Override
  public void backward(Kernels k, float[] params, float[] grads, float[] x, float[] y, float[] dy, float[] dx, int n) {
    if (dx != null && dx != dy) {
      System.arraycopy(dy, 0, dx, 0, n * inputShape().size());
    }
  }
}
