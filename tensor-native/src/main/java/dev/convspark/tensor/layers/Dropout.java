package dev.convspark.tensor.layers;

import dev.convspark.tensor.Shape;
import dev.convspark.tensor.kernels.Kernels;

/**
 * Inverted dropout: while training, each value is kept with probability {@code keepProb} and
 * scaled by {@code 1 / keepProb}, so evaluation needs no rescaling and is the identity. The mask
 * comes from the step's seed alone, so a step can be repeated exactly.
 */
public final class Dropout extends Layer {

  private float keepProb = 1f;
  private long firstSample;
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

  /**
   * The index of the next batch's first sample within its global batch (0 when the batch is
   * the global batch): sample {@code i} of the batch draws its mask as sample {@code first + i}
   * of the global batch would, so a global batch split across workers is masked as if it were
   * one batch, however it is split.
   */
  public void setFirstSample(long first) {
    if (first < 0) {
      throw new IllegalArgumentException("the first sample's index must be >= 0 but was " + first);
    }
    this.firstSample = first;
  }

  /** See {@link #setFirstSample}. */
  public long firstSample() {
    return firstSample;
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
    fillMask(seed, keepProb, mask, firstSample * inputShape().size(), size);
    for (int i = 0; i < size; i++) {
      y[i] = x[i] * mask[i];
    }
  }

  /**
   * The mask of a step, values {@code first} to {@code first + size - 1} of it:
   * {@code mask[i]} is {@code 1 / keepProb} where value {@code first + i} is kept and 0 where it is
   * dropped. Value j is kept when a uniform draw in [0, 1) is below {@code keepProb}; the draw is
   * the top 24 bits of a 64-bit mix (SplitMix64's finaliser) of
   * {@code mix(seed) + (j + 1) * 0x9E3779B97F4A7C15}, so each value's draw depends on the seed
   * and its index alone, whatever the order they are computed in or the pieces they are split into. The seed is mixed first: the
   * seeds of consecutive steps differ by that same constant, and unmixed, each step's mask would
   * be the last one's shifted by one value. Every backend draws its masks here.
   */
  public static void fillMask(long seed, float keepProb, float[] mask, long first, int size) {
    float scale = 1f / keepProb;
    // draw * 2^-24 < keepProb exactly when the integer draw is below ceil(keepProb * 2^24);
    // computed without a branch, which would be mispredicted half the time at keepProb 0.5.
    long below = (long) Math.ceil(keepProb * 0x1.0p24);
    long z = mix(seed) + first * 0x9E3779B97F4A7C15L;
    for (int i = 0; i < size; i++) {
      z += 0x9E3779B97F4A7C15L;
      mask[i] = scale * (int) (((mix(z) >>> 40) - below) >>> 63);
    }
  }

  private static long mix(long z) {
    long h = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    h = (h ^ (h >>> 27)) * 0x94D049BB133111EBL;
    return h ^ (h >>> 31);
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
