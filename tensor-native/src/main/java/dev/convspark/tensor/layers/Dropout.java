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
  private long[] runFirsts = {0};
  private int[] runLengths;
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
    setRuns(new long[] {first}, null);
  }

  /**
   * Where the next batch's samples sit in their global batch, as runs of consecutive samples: the
   * batch's first {@code lengths[0]} samples are samples {@code firsts[0]} onwards of the global
   * batch, the next {@code lengths[1]} are samples {@code firsts[1]} onwards, and so on. With
   * {@code lengths} null, one run of the whole batch from {@code firsts[0]}.
   */
  public void setRuns(long[] firsts, int[] lengths) {
    checkRuns(firsts, lengths);
    this.runFirsts = firsts.clone();
    this.runLengths = lengths == null ? null : lengths.clone();
  }

  private static void checkRuns(long[] firsts, int[] lengths) {
    if (firsts.length == 0 || (lengths != null && lengths.length != firsts.length)) {
      throw new IllegalArgumentException("runs need one first sample per length, given " + firsts.length
          + " first samples and " + (lengths == null ? "no" : Integer.toString(lengths.length)) + " lengths");
    }
    for (int k = 0; k < firsts.length; k++) {
      if (firsts[k] < 0 || (lengths != null && lengths[k] < 0)) {
        throw new IllegalArgumentException("run " + k + " starts at sample " + firsts[k] + " with "
            + (lengths == null ? "the batch" : lengths[k] + " samples") + "; both must be >= 0");
      }
    }
  }

  /**
   * The masks of {@code n} samples of {@code sampleSize} values each, placed in their global batch
   * by {@code firsts} and {@code lengths} as {@link #setRuns} says: every backend masks through here.
   */
  public static void fillMasks(long seed, float keepProb, float[] mask, int sampleSize, int n, long[] firsts,
                               int[] lengths) {
    if (lengths == null) {
      fillMask(seed, keepProb, mask, 0, firsts[0] * sampleSize, n * sampleSize);
      return;
    }
    int at = 0;
    for (int k = 0; k < lengths.length; k++) {
      fillMask(seed, keepProb, mask, at * sampleSize, firsts[k] * sampleSize, lengths[k] * sampleSize);
      at += lengths[k];
    }
    if (at != n) {
      throw new IllegalArgumentException("the runs hold " + at + " samples but the batch has " + n);
    }
  }

  /**
   * The global batch index of each of {@code n} samples placed by {@code firsts} and
   * {@code lengths} as {@link #setRuns} says: with {@link #mixSeed} and {@link #keepBelow}, what
   * a backend drawing {@link #fillMask}'s masks on its own device needs (sample {@code s}'s values
   * are the step's mask from value {@code index[s] * sampleSize} on).
   */
  public static long[] sampleIndices(int n, long[] firsts, int[] lengths) {
    checkRuns(firsts, lengths);
    long[] index = new long[n];
    int at = 0;
    for (int k = 0; k < (lengths == null ? 1 : lengths.length); k++) {
      int len = lengths == null ? n : lengths[k];
      for (int i = 0; i < len && at + i < n; i++) {
        index[at + i] = firsts[k] + i;
      }
      at += len;
    }
    if (at != n) {
      throw new IllegalArgumentException("the runs hold " + at + " samples but the batch has " + n);
    }
    return index;
  }

  @Override
  public void forward(Kernels k, float[] params, float[] x, float[] y, int n, boolean training, long seed) {
    int size = n * inputShape().size();
    if (!training || keepProb == 1f) {
      System.arraycopy(x, 0, y, 0, size);
      mask = null;
      return;
    }
    float[] m = mask = ensure(mask, size);
    int sample = inputShape().size();
    // Each sample's mask is its own stretch of the step's (fillMask), so samples can be masked
    // on several threads, in any order, with the same values.
    long[] index = sampleIndices(n, runFirsts, runLengths);
    k.forSampleRanges(n, sample, (s0, s1) -> {
      for (int s = s0; s < s1; s++) {
        fillMask(seed, keepProb, m, s * sample, index[s] * sample, sample);
      }
      for (int i = s0 * sample; i < s1 * sample; i++) {
        y[i] = x[i] * m[i];
      }
    });
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
    fillMask(seed, keepProb, mask, 0, first, size);
  }

  /** As above, writing the values from {@code mask[offset]} on. */
  public static void fillMask(long seed, float keepProb, float[] mask, int offset, long first, int size) {
    float scale = 1f / keepProb;
    // Kept when the draw is below keepBelow; computed without a branch, which would be
    // mispredicted half the time at keepProb 0.5.
    long below = keepBelow(keepProb);
    long z = mixSeed(seed) + first * 0x9E3779B97F4A7C15L;
    for (int i = 0; i < size; i++) {
      z += 0x9E3779B97F4A7C15L;
      mask[offset + i] = scale * (int) (((mix(z) >>> 40) - below) >>> 63);
    }
  }

  /** The seed as {@link #fillMask} starts from it: SplitMix64's finaliser of {@code seed}. */
  public static long mixSeed(long seed) {
    return mix(seed);
  }

  /**
   * The integer draws (24 bits) that keep a value: those below {@code ceil(keepProb * 2^24)}, as
   * {@code draw * 2^-24 < keepProb} exactly when the draw is below it.
   */
  public static long keepBelow(float keepProb) {
    return (long) Math.ceil(keepProb * 0x1.0p24);
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
    float[] m = mask;
    int sample = inputShape().size();
    k.forSampleRanges(n, sample, (s0, s1) -> {
      for (int i = s0 * sample; i < s1 * sample; i++) {
        dx[i] = dy[i] * m[i];
      }
    });
  }
}
