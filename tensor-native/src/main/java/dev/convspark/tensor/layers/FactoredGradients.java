package dev.convspark.tensor.layers;

/**
 * A gradient listener (see {@link Layer#backward(dev.convspark.tensor.kernels.Kernels, float[],
 * float[], float[], float[], float[], float[], int, java.util.function.IntConsumer)}) that may take
 * a dense layer's weight gradient as its two factors instead of the product: the layer's input
 * {@code x} ({@code n x inputs}) and output gradient {@code dy} ({@code n x units}), whose product
 * {@code x^T dy} is the weight gradient. A gradient exchange between several workers sends the
 * factors of its samples, far fewer floats than the product when the batch is small, and each
 * worker computes the rows of the summed gradient it needs from every worker's factors.
 */
public interface FactoredGradients extends java.util.function.IntConsumer {

  /**
   * Called by a dense layer during its backward pass, before it writes any gradient, with its
   * factors (valid during this call only: copy what is kept). True: the listener takes the
   * weight gradient, and the layer leaves its weights' part of the gradient array unwritten; it
   * still writes the bias gradient and the input gradient, and its end is told as always (the
   * listener may change the layer's weights only from then on). False: the layer computes the
   * weight gradient itself.
   *
   * @param k the kernels the backward pass runs on: the listener may use them on this thread,
   *     here and when it is told of later parts, until the backward pass ends
   * @param weightOffset where the layer's weights start in the parameter array
   */
  boolean takeFactors(dev.convspark.tensor.kernels.Kernels k, int weightOffset, int inputs, int units, float[] x,
                      float[] dy, int n);
}
