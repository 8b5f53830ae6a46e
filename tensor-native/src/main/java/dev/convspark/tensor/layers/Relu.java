package dev.convspark.tensor.layers;

import dev.convspark.tensor.Shape;
import dev.convspark.tensor.kernels.Kernels;

/** {@code y = max(x, 0)}; the gradient passes where the output is positive. */
public final class Relu extends Layer {

  /** A ReLU over samples of the given shape. */
  public Relu(String name, Shape shape) {
    super(name, shape, shape);
  }

  @Override
  public void forward(Kernels k, float[] params, float[] x, float[] y, int n, boolean training, long seed) {
    k.relu(x, y, n * inputShape().size());
  }

  @Override
  public void backward(Kernels k, float[] params, float[] grads, float[] x, float[] y, float[] dy, float[] dx, int n) {
    if (dx == null) {
      return;
    }
    k.reluBackward(y, dy, dx, n * inputShape().size());
  }
}
