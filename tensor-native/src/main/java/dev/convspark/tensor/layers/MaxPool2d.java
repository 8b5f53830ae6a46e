package dev.convspark.tensor.layers;

import dev.convspark.tensor.Shape;
import dev.convspark.tensor.kernels.ConvGeometry;
import dev.convspark.tensor.kernels.Kernels;

/**
 * Max pooling per channel. The backward pass routes each output gradient to the input position
 * that won the forward pass (the first one on ties).
 */
public final class MaxPool2d extends Layer {

  private final ConvGeometry g;
  private int[] argmax = new int[0];
  private boolean maskByInput;

  /** A max pool with the given window geometry (channels in = channels out). */
  public MaxPool2d(String name, ConvGeometry g) {
    super(name, Shape.image(g.height(), g.width(), g.channels()), Shape.image(g.outHeight(), g.outWidth(), g.channels()));
    this.g = g;
  }

  /**
   * Routes gradients only to inputs above zero: the input is a ReLU's output, and this layer's
   * backward pass then does the ReLU's as well (see {@link Relu#leaveBackwardToNext}).
   */
  public void maskByPositiveInput() {
    this.maskByInput = true;
  }

  /** The geometry of the window. */
  public ConvGeometry geometry() {
    return g;
  }

  @Override
  public void forward(Kernels k, float[] params, float[] x, float[] y, int n, boolean training, long seed) {
    int size = n * outputShape().size();
    if (argmax.length < size) {
      argmax = new int[size];
    }
    k.maxPool(x, n, g, y, argmax);
  }

  @Override
  public void backward(Kernels k, float[] params, float[] grads, float[] x, float[] y, float[] dy, float[] dx, int n) {
    if (dx == null) {
      return;
    }
    k.maxPoolBackward(dy, argmax, n, g, maskByInput ? x : null, dx);
  }
}
