package dev.convspark.tensor.layers;

import dev.convspark.tensor.Shape;
import dev.convspark.tensor.kernels.ConvBuffers;
import dev.convspark.tensor.kernels.ConvGeometry;
import dev.convspark.tensor.kernels.Kernels;

/**
 * 2-D convolution (cross-correlation, as in TensorFlow) over NHWC input, computed as patch
 * unfolding (im2col) and matrix multiplies by the kernels' {@link Kernels#convForward} and
 * {@link Kernels#convBackward}; a 1x1 convolution of stride 1 multiplies the input as it is. Parameters: weights {@code [kh, kw, inC, outC]}
 * (TensorFlow's HWIO order), then one bias per output channel.
 */
public final class Conv2d extends Layer {

  private final ConvGeometry g;
  private final int filters;
  private final ConvBuffers buffers = new ConvBuffers();
  private float[] dwT;
  private boolean relu;

  /** A convolution with the given geometry and number of filters. */
  public Conv2d(String name, ConvGeometry g, int filters) {
    super(name, Shape.image(g.height(), g.width(), g.channels()), Shape.image(g.outHeight(), g.outWidth(), filters));
    this.g = g;
    this.filters = filters;
  }

  /**
   * Makes this layer apply a ReLU to its own output, as the next layer (a {@link Relu} the network
   * has told to {@link Relu#fuseIntoPrevious() leave it} to this one) would: cheaper while each
   * sample's output is still in cache.
   */
  public void fuseRelu() {
    this.relu = true;
  }

  /** The geometry of the sliding window. */
  public ConvGeometry geometry() {
    return g;
  }

  @Override
  public int paramCount() {
    return g.patchSize() * filters + filters;
  }

  /** Number of weights (the bias follows them). */
  public int weightCount() {
    return g.patchSize() * filters;
  }

  @Override
  public void forward(Kernels k, float[] params, float[] x, float[] y, int n, boolean training, long seed) {
    int rows = n * g.outputPixels();
    int w = paramOffset();
    int b = w + weightCount();
    if (g.kernelHeight() == 1 && g.kernelWidth() == 1 && g.stride() == 1) {
      // Each output row starts as the bias, then the multiply adds the input times the weights.
      k.fillRows(params, b, y, rows, filters);
      k.gemm(false, false, rows, filters, g.patchSize(), x, 0, g.patchSize(), params, w, filters, 1f, y, 0, filters);
      if (relu) {
        k.relu(y, y, rows * filters);
      }
      return;
    }
    k.convForward(x, n, g, params, w, b, filters, y, relu, buffers);
  }

  @Override
  public void backward(Kernels k, float[] params, float[] grads, float[] x, float[] y, float[] dy, float[] dx, int n) {
    int rows = n * g.outputPixels();
    int w = paramOffset();
    int b = w + weightCount();
    k.sumRows(dy, rows, filters, grads, b);
    if (g.kernelHeight() != 1 || g.kernelWidth() != 1 || g.stride() != 1) {
      k.convBackward(x, dy, n, g, params, w, filters, grads, dx, buffers);
      return;
    }
    // Pointwise: the input is the patch matrix. dW = x^T dy, computed as its transpose dy^T x.
    dwT = ensure(dwT, weightCount());
    k.gemm(true, false, filters, g.patchSize(), rows, dy, 0, filters, x, 0, g.patchSize(), 0f, dwT, 0, g.patchSize());
    k.transpose(dwT, filters, g.patchSize(), grads, w);
    if (dx != null) {
      k.gemm(false, true, rows, g.patchSize(), filters, dy, 0, filters, params, w, filters, 0f, dx, 0, g.patchSize());
    }
  }
}
