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

  /**
   * What each weight is multiplied by in the loss: the training rows' count over the sum of their
   * weights, so that the weights have a mean of 1 over the training rows. The objective is then the
   * weighted mean loss over the data, as with MLlib's instance weights, the step's gradient its
   * unbiased estimate at the learning rate of unweighted training, and multiplying every weight by
   * one number changes nothing. 1 without weights.
   *
   * @throws IllegalArgumentException when the weights sum to 0, naming the column
   */
  static double weightScale(WeightReader weights, long count, double weightSum) {
    if (weights == null) {
      return 1;
    }
    weights.requirePositive(weightSum);
    return count / weightSum;
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
   * batch (for dropout). Both sync modes draw the same samples. With weights, each sample's loss
   * counts its weight times {@code weightScale} (see {@link #weightScale}).
   */
  static GradientSum partitionGradient(Block b, int share, int partition, int first, long stepSeed, ModelRunner runner,
                                       Shift shift, double weightScale) {
    return partitionGradient(b, share, partition, first, stepSeed, runner, new float[runner.paramCount()], shift,
        weightScale);
  }

  /**
   * As above, copying the gradient into {@code grads}, or leaving it in the runner when
   * {@code grads} is null (barrier workers reach it there).
   */
  static GradientSum partitionGradient(Block b, int share, int partition, int first, long stepSeed, ModelRunner runner,
                                       float[] grads, Shift shift, double weightScale) {
    float[] x = new float[share * b.size];
    int[] y = new int[share];
    float[] w = b.weighted() ? new float[share] : null;
    sample(b, share, partition, stepSeed, x, y, w, weightScale, 0, shift);
    SoftmaxCrossEntropy.Result r = runner.computeGradients(x, y, w, share, 1f, stepSeed, new long[] {first}, null);
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
   * With {@code w} (else null), each sample's weight times {@code weightScale} goes there.
   */
  static void sample(Block b, int share, int partition, long stepSeed, float[] x, int[] y, float[] w,
                     double weightScale, int at, Shift shift) {
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
      if (w != null) {
        w[at + i] = (float) (b.weight(picked) * weightScale);
      }
      if (shift != null) {
        shift.apply(x, (at + i) * b.size, rnd, scratch);
      }
    }
  }
}
