package dev.convspark.tensor.train;

import java.util.SplittableRandom;

/**
 * Draws mini-batches of sample indices without replacement: each epoch is a fresh seeded
 * permutation of {@code [0, size)}, and a batch that crosses the end of an epoch continues in
 * the next one. The same seed gives the same sequence of batches.
 */
public final class BatchSampler {

  private final int size;
  private final SplittableRandom rnd;
  private final int[] order;
  private int pos;
  private long epoch;

  /** A sampler over {@code size} samples (at least 1). */
  public BatchSampler(int size, long seed) {
    if (size < 1) {
      throw new IllegalArgumentException("cannot sample batches from " + size + " samples");
    }
    this.size = size;
    this.rnd = new SplittableRandom(seed);
    this.order = new int[size];
    for (int i = 0; i < size; i++) {
      order[i] = i;
    }
    shuffle();
  }

  private void shuffle() {
    for (int i = size - 1; i > 0; i--) {
      int j = rnd.nextInt(i + 1);
      int t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
  }

  /** Fills {@code dst[0..n)} with the next {@code n} indices. */
  public void next(int[] dst, int n) {
    for (int i = 0; i < n; i++) {
      if (pos == size) {
        shuffle();
        pos = 0;
        epoch++;
      }
      dst[i] = order[pos++];
    }
  }

  /** Completed passes over the data. */
  public long epoch() {
    return epoch;
  }
}
