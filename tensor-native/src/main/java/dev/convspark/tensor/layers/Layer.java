package dev.convspark.tensor.layers;

import dev.convspark.tensor.Shape;
import dev.convspark.tensor.kernels.Kernels;

/**
 * One layer of a network: its forward and backward pass side by side. Activations are batches of
 * samples laid out one after another, each of {@link #inputShape()} (NHWC for images). Parameters
 * live in the network's one flat buffer, at {@link #paramOffset()}; gradients at the same offset
 * in the flat gradient buffer.
 */
public abstract class Layer {

  private final String name;
  private final Shape in;
  private final Shape out;
  private int paramOffset;

  protected Layer(String name, Shape in, Shape out) {
    this.name = name;
    this.in = in;
    this.out = out;
  }

  /** The layer's name in the network, such as {@code conv1} or {@code dense2}. */
  public String name() {
    return name;
  }

  /** The shape of one input sample. */
  public Shape inputShape() {
    return in;
  }

  /** The shape of one output sample. */
  public Shape outputShape() {
    return out;
  }

  /** How many floats of the flat parameter buffer this layer owns (0 for most). */
  public int paramCount() {
    return 0;
  }

  /** Where this layer's parameters start in the flat buffer. */
  public int paramOffset() {
    return paramOffset;
  }

  /** Set once by the network when it lays out the flat buffer. */
  public void setParamOffset(int offset) {
    this.paramOffset = offset;
  }

  /**
   * Computes {@code y} from {@code x} for {@code n} samples.
   *
   * @param params   the flat parameter buffer
   * @param training true while training (dropout active)
   * @param seed     the seed of this step's randomness (dropout); the same seed gives the same mask
   */
  public abstract void forward(Kernels k, float[] params, float[] x, float[] y, int n, boolean training, long seed);

  /**
   * Given {@code dy} (the loss gradient with respect to {@code y}), writes the parameter gradients
   * into {@code grads} (overwriting) and, unless {@code dx} is null, the input gradient into
   * {@code dx}. {@code x} and {@code y} are those of the last forward pass.
   */
  public abstract void backward(Kernels k, float[] params, float[] grads, float[] x, float[] y, float[] dy,
                                float[] dx, int n);

  /**
   * As {@link #backward(Kernels, float[], float[], float[], float[], float[], float[], int)}, telling
   * {@code finished} (when not null) indices of {@code grads} from which this layer's gradients are
   * final while it is still computing the rest, so that they can leave early (a gradient exchange
   * sends them during the backward pass): each index no higher than the one before. The caller says
   * when the whole layer is done. Here: nothing before the end.
   */
  public void backward(Kernels k, float[] params, float[] grads, float[] x, float[] y, float[] dy, float[] dx, int n,
                       java.util.function.IntConsumer finished) {
    backward(k, params, grads, x, y, dy, dx, n);
  }

  /** Grows a scratch buffer to at least {@code size} floats, keeping it when large enough. */
  protected static float[] ensure(float[] buf, int size) {
    return buf != null && buf.length >= size ? buf : new float[size];
  }

  @Override
  public String toString() {
    return name + " " + in + " -> " + out;
  }
}
