package dev.convspark.tensor.layers;

import dev.convspark.tensor.Shape;
import dev.convspark.tensor.kernels.Kernels;
import java.util.SplittableRandom;

/**
 * Inverted dropout: while training, each value is kept with probability {@code keepProb} and
 * scaled by {@code 1 / keepProb}, so evaluation needs no rescaling and is the identity. The mask
 * comes from the step's seed alone, so a step can be repeated exactly.
 */
public final class Dropout extends Layer {

  private float keepProb = 1f;
  private float[] mask;

  /** A dropout layer over samples of the given shape; the keep probability is set per run. */
  public Dropout(String name, Shape shape) {
    super(name, shape, shape);
  }

  /** Sets the probability of keeping a value while training, in (0, 1]. */
  public void setKeepProb(float keepProb) {
    if (!(keepProb > 0f && keepProb <= 1f)) {
      throw new IllegalArgumentException("keepProb must be in (0, 1] but was " + keepProb);
    }
    this.keepProb = keepProb;
  }

  /** The probability of keeping a value while training. */
  public float keepProb() {
    return keepProb;
  }

  @Override
  public void forward(Kernels k, float[] params, float[] x, float[] y, int n, boolean training, long seed) {
    int size = n * inputShape().size();
    if (!training || keepProb == 1f) {
      System.arraycopy(x, 0, y, 0, size);
      mask = null;
      return;
    }
    mask = ensure(mask, size);
    SplittableRandom r = new SplittableRandom(seed);
    float scale = 1f / keepProb;
    for (int i = 0; i < size; i++) {
      mask[i] = r.nextFloat() < keepProb ? scale : 0f;
      y[i] = x[i] * mask[i];
    }
  }

  @Override
  public void backward(Kernels k, float[] params, float[] grads, float[] x, float[] y, float[] dy, float[] dx, int n) {
    if (dx == null) {
      return;
    }
    int size = n * inputShape().size();
    if (mask == null) {
      System.arraycopy(dy, 0, dx, 0, size);
      return;
    }
    for (int i = 0; i < size; i++) {
      dx[i] = dy[i] * mask[i];
    }
  }
}
