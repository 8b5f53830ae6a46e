package dev.convspark.ml.training;

import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.layers.SoftmaxCrossEntropy;
import java.util.List;
import java.util.SplittableRandom;

/**
 * How a step's global batch is split over the partitions and drawn from each, the same in both
 * sync modes: shares proportional to the partitions' sizes, each partition's samples drawn
 * without replacement by a shuffle seeded by the step and the partition.
 */
final class Sampling {

  private Sampling() {
  }

  /**
   * Splits the global batch over partitions in proportion to their sizes; the remainder goes to
   * the partitions with the largest fractional parts (ties to the lower index), so the shares
   * always sum to the batch and never exceed a partition's size.
   */
  static int[] shares(List<Integer> sizes, long total, int batch) {
    int p = sizes.size();
    int[] s = new int[p];
    double[] frac = new double[p];
    int given = 0;
    int wanted = (int) Math.min(batch, total);
    for (int i = 0; i < p; i++) {
      double exact = (double) wanted * sizes.get(i) / total;
      s[i] = (int) Math.floor(exact);
      frac[i] = exact - s[i];
      given += s[i];
    }
    while (given < wanted) {
      int best = -1;
      for (int i = 0; i < p; i++) {
        if (s[i] < sizes.get(i) && (best < 0 || frac[i] > frac[best])) {
          best = i;
        }
      }
      s[best]++;
      frac[best] = -1;
      given++;
    }
    return s;
  }

  /** Where each share starts in the global batch: the sum of the shares before it. */
  static int[] firstSamples(int[] shares) {
    int[] first = new int[shares.length];
    for (int i = 1; i < shares.length; i++) {
      first[i] = first[i - 1] + shares[i - 1];
    }
    return first;
  }

  /**
   * The summed-loss gradient over {@code share} samples of a partition drawn for this step, on a
   * runner that holds the step's weights, the share starting at sample {@code first} of the global
   * batch (for dropout). Both sync modes draw the same samples.
   */
  static GradientSum partitionGradient(Block b, int share, int partition, int first, long stepSeed, ModelRunner runner,
                                       Shift shift) {
    return partitionGradient(b, share, partition, first, stepSeed, runner, new float[runner.paramCount()], shift);
  }

  /**
   * As above, copying the gradient into {@code grads}, or leaving it in the runner when
   * {@code grads} is null (barrier workers reach it there).
   */
  static GradientSum partitionGradient(Block b, int share, int partition, int first, long stepSeed, ModelRunner runner,
                                       float[] grads, Shift shift) {
    float[] x = new float[share * b.size];
    int[] y = new int[share];
    sample(b, share, partition, stepSeed, x, y, 0, shift);
    SoftmaxCrossEntropy.Result r = runner.computeGradients(x, y, share, 1f, stepSeed, first);
    if (grads != null) {
      runner.copyGradientsTo(grads);
    }
    return new GradientSum(grads, r.lossSum(), r.correct(), share);
  }

  /**
   * Draws partition {@code partition}'s {@code share} samples of this step from its block into
   * {@code x} and {@code y} from sample {@code at} on: without replacement within the step, the
   * first {@code share} places of a Fisher-Yates shuffle seeded by step and partition. With a
   * {@code shift} (else null), each image is shifted as it is drawn, by draws from the same stream.
   */
  static void sample(Block b, int share, int partition, long stepSeed, float[] x, int[] y, int at, Shift shift) {
    SplittableRandom rnd = new SplittableRandom(stepSeed * 31 + partition);
    float[] scratch = shift == null ? null : new float[b.size];
    // The shuffle's swaps, kept only where they moved something: order[k] is moved.get(k), else k.
    // The same draws as a whole permutation array, without filling one of the partition's size every step.
    java.util.HashMap<Integer, Integer> moved = new java.util.HashMap<>(4 * share);
    for (int i = 0; i < share; i++) {
      int j = i + rnd.nextInt(b.count - i);
      int picked = moved.getOrDefault(j, j);
      moved.put(j, moved.getOrDefault(i, i));
      b.copyFeatures(picked, x, (at + i) * b.size);
      y[at + i] = b.label(picked);
      if (shift != null) {
        shift.apply(x, (at + i) * b.size, rnd, scratch);
      }
    }
  }
}
