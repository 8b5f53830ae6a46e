package dev.convspark.tensor.layers;

import dev.convspark.tensor.Shape;
import dev.convspark.tensor.kernels.Kernels;

/**
 * Fully connected layer {@code y = x W + b}. Parameters: weights {@code [inputs, units]}
 * row-major (TensorFlow's order), then the bias.
 */
public final class Dense extends Layer {

  private final int inputs;
  private final int units;

  /** A dense layer from {@code inputs} features to {@code units}. */
  public Dense(String name, int inputs, int units) {
    super(name, Shape.vector(inputs), Shape.vector(units));
    this.inputs = inputs;
    this.units = units;
  }

  @Override
  public int paramCount() {
    return inputs * units + units;
  }

  /** Number of weights (the bias follows them). */
  public int weightCount() {
    return inputs * units;
  }

  @Override
  public void forward(Kernels k, float[] params, float[] x, float[] y, int n, boolean training, long seed) {
    int b = paramOffset() + weightCount();
    for (int s = 0; s < n; s++) {
      System.arraycopy(params, b, y, s * units, units);
    }
    k.gemm(false, false, n, units, inputs, x, 0, inputs, params, paramOffset(), units, 1f, y, 0, units);
  }

  @Override
  public void backward(Kernels k, float[] params, float[] grads, float[] x, float[] y, float[] dy, float[] dx, int n) {
    int w = paramOffset();
    int b = w + weightCount();
    k.gemm(true, false, inputs, units, n, x, 0, inputs, dy, 0, units, 0f, grads, w, units);
    java.util.Arrays.fill(grads, b, b + units, 0f);
    for (int s = 0; s < n; s++) {
      for (int u = 0; u < units; u++) {
        grads[b + u] += dy[s * units + u];
      }
    }
    if (dx != null) {
      k.gemm(false, true, n, inputs, units, dy, 0, units, params, w, units, 0f, dx, 0, inputs);
    }
  }
}
