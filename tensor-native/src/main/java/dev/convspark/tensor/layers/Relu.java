package dev.convspark.tensor.layers;

import dev.convspark.tensor.Shape;
import dev.convspark.tensor.kernels.Kernels;

/** {@code y = max(x, 0)}; the gradient passes where the output is positive. */
public final class Relu extends Layer {

  private boolean fused;
  private boolean maskedByNext;

  /** A ReLU over samples of the given shape. */
  public Relu(String name, Shape shape) {
    super(name, shape, shape);
  }

  /**
   * The previous layer applies this ReLU to its own output ({@link Conv2d#fuseRelu}), and this
   * layer's input and output are then one buffer: its forward pass has nothing left to do, and
   * its backward pass works in place.
   */
  public void fuseIntoPrevious() {
    this.fused = true;
  }

  /** Whether the previous layer applies this ReLU. */
  public boolean fusedIntoPrevious() {
    return fused;
  }

  /**
   * The next layer (a {@link MaxPool2d} told to {@link MaxPool2d#maskByPositiveInput mask}) routes
   * gradients only to positive inputs, which is this layer's backward pass: with its input and
   * output one buffer, nothing is left to do here.
   */
  public void leaveBackwardToNext() {
    this.maskedByNext = true;
  }

  @Override
  public void forward(Kernels k, float[] params, float[] x, float[] y, int n, boolean training, long seed) {
    if (!fused) {
      k.relu(x, y, n * inputShape().size());
    }
  }

  @Override
  public void backward(Kernels k, float[] params, float[] grads, float[] x, float[] y, float[] dy, float[] dx, int n) {
    if (dx == null || (fused && maskedByNext)) {
      return;
    }
    k.reluBackward(y, dy, dx, n * inputShape().size());
  }
}
