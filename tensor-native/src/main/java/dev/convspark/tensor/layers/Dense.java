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
  private float[] dxT;

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

  /** Number of inputs: the rows of the weight matrix. */
  public int inputs() {
    return inputs;
  }

  /** Number of units: the columns of the weight matrix. */
  public int units() {
    return units;
  }

  /** Number of weights (the bias follows them). */
  public int weightCount() {
    return inputs * units;
  }

  @Override
  public void forward(Kernels k, float[] params, float[] x, float[] y, int n, boolean training, long seed) {
    int b = paramOffset() + weightCount();
    k.fillRows(params, b, y, n, units);
    k.gemm(false, false, n, units, inputs, x, 0, inputs, params, paramOffset(), units, 1f, y, 0, units);
  }

  @Override
  public void backward(Kernels k, float[] params, float[] grads, float[] x, float[] y, float[] dy, float[] dx, int n) {
    backward(k, params, grads, x, y, dy, dx, n, null);
  }

  /** Row blocks of the weight gradient that are told final one by one when someone listens. */
  private static final int STREAMED_BLOCKS = 8;

  /**
   * Whether the weight gradient is computed in blocks when someone listens: for large layers only
   * (at least 2^20 weights and 64 units), where it matters and where each block's multiply still
   * takes the kernels' general route, so that every element's sum is that of one multiply.
   */
  private boolean streamed() {
    return weightCount() >= 1 << 20 && units >= 64;
  }

  /**
   * With a listener: a {@link FactoredGradients} listener may take the weight gradient as its
   * factors (the layer then writes the bias and input gradients only). Otherwise, for a large
   * layer, the bias gradient first, then the input gradient, then the weight gradient in
   * {@value #STREAMED_BLOCKS} blocks of rows from the last to the first, each told final as it is
   * done (deep-mnist's first dense layer is 98% of its gradient: an exchange can start on it while
   * the layer still computes). The input gradient comes before the blocks because it reads the
   * weights, which a listener told of a block may update at once. Each element's sum is the same
   * as in one multiply; without a listener, one multiply.
   */
  @Override
  public void backward(Kernels k, float[] params, float[] grads, float[] x, float[] y, float[] dy, float[] dx, int n,
                       java.util.function.IntConsumer finished) {
    int w = paramOffset();
    int b = w + weightCount();
    if (finished instanceof FactoredGradients f && f.takeFactors(k, w, inputs, units, x, dy, n)) {
      k.sumRows(dy, n, units, grads, b);
      inputGradient(k, params, dy, dx, n);
    } else if (finished == null || !streamed()) {
      k.gemm(true, false, inputs, units, n, x, 0, inputs, dy, 0, units, 0f, grads, w, units);
      k.sumRows(dy, n, units, grads, b);
      inputGradient(k, params, dy, dx, n);
    } else {
      k.sumRows(dy, n, units, grads, b);
      finished.accept(b);
      inputGradient(k, params, dy, dx, n);
      int per = (inputs + STREAMED_BLOCKS - 1) / STREAMED_BLOCKS;
      for (int r1 = inputs; r1 > 0; r1 -= per) {
        int r0 = Math.max(0, r1 - per);
        k.gemm(true, false, r1 - r0, units, n, x, r0, inputs, dy, 0, units, 0f, grads, w + r0 * units, units);
        finished.accept(w + r0 * units);
      }
    }
  }

  /**
   * {@code dx = dy W^T} (nothing when {@code dx} is null), computed as its transpose
   * {@code W dy^T} (inputs x n), which reads W in place instead of packing its transpose, then
   * transposed into place.
   */
  private void inputGradient(Kernels k, float[] params, float[] dy, float[] dx, int n) {
    if (dx != null) {
      dxT = ensure(dxT, inputs * n);
      k.gemm(false, true, inputs, n, units, params, paramOffset(), units, dy, 0, units, 0f, dxT, 0, n);
      k.transpose(dxT, inputs, n, dx, 0);
    }
  }
}
