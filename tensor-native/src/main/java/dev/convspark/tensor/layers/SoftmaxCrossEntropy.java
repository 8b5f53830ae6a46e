package dev.convspark.tensor.layers;

/**
 * Softmax cross-entropy from logits, computed stably: {@code loss = logsumexp(z) - z[label]},
 * with the maximum subtracted before exponentiating. Its gradient with respect to the logits is
 * {@code softmax(z) - onehot(label)}, times the reduction's scale.
 */
public final class SoftmaxCrossEntropy {

  /** How per-sample losses combine into the batch loss. */
  public enum Reduction {
    /** The sum over the batch. */
    SUM,
    /** The mean over the batch. */
    MEAN
  }

  /**
   * The outcome of one batch: the summed loss (before any mean; with weights, the weighted sum) and
   * how many argmax predictions were right.
   */
  public record Result(double lossSum, int correct, int count) {
    /** Mean loss per sample. */
    public double meanLoss() {
      return count == 0 ? Double.NaN : lossSum / count;
    }
  }

  private SoftmaxCrossEntropy() {
  }

  /**
   * Computes the loss of {@code n} samples and writes {@code scale * dLoss/dLogits} into
   * {@code dLogits} (unless it is null). For a mean over a batch, pass {@code scale = 1 / batch}.
   *
   * @throws IllegalArgumentException when a label is outside {@code [0, classes)}
   */
  public static Result compute(float[] logits, int[] labels, int n, int classes, float scale, float[] dLogits) {
    return compute(logits, labels, null, n, classes, scale, dLogits);
  }

  /**
   * As above with a weight per sample (null: every weight 1): sample {@code s}'s loss counts
   * {@code weights[s]} times in the summed loss, and its gradient is scaled by
   * {@code scale * weights[s]} (that product taken in float, as the GPU takes it). A weight of 2
   * is the same as the sample twice in the batch; a weight of 0 leaves it out of the loss and the
   * gradient (its prediction still counts in {@link Result#correct}).
   *
   * @throws IllegalArgumentException when a label is outside {@code [0, classes)}, or a weight is
   *     negative or not finite
   */
  public static Result compute(float[] logits, int[] labels, float[] weights, int n, int classes, float scale,
                               float[] dLogits) {
    requireWeights(weights, n);
    double total = 0;
    int correct = 0;
    double[] e = new double[classes];
    for (int s = 0; s < n; s++) {
      int y = labels[s];
      if (y < 0 || y >= classes) {
        throw new IllegalArgumentException("label " + y + " of sample " + s + " is outside [0, " + classes + ")");
      }
      int o = s * classes;
      float max = logits[o];
      int best = 0;
      for (int c = 1; c < classes; c++) {
        if (logits[o + c] > max) {
          max = logits[o + c];
          best = c;
        }
      }
      if (best == y) {
        correct++;
      }
      // Each exponential once: it serves the sum and then the probability.
      double sum = 0;
      for (int c = 0; c < classes; c++) {
        e[c] = Math.exp(logits[o + c] - max);
        sum += e[c];
      }
      double loss = Math.log(sum) + max - logits[o + y];
      total += weights == null ? loss : weights[s] * loss;
      if (dLogits != null) {
        double inv = 1 / sum;
        float sampleScale = weights == null ? scale : scale * weights[s];
        for (int c = 0; c < classes; c++) {
          dLogits[o + c] = (float) (sampleScale * (e[c] * inv - (c == y ? 1 : 0)));
        }
      }
    }
    return new Result(total, correct, n);
  }

  /**
   * Checks that the first {@code n} of {@code weights} (unless it is null) are finite and not
   * negative.
   *
   * @throws IllegalArgumentException naming the first sample whose weight is not
   */
  public static void requireWeights(float[] weights, int n) {
    if (weights == null) {
      return;
    }
    if (weights.length < n) {
      throw new IllegalArgumentException(n + " samples need " + n + " weights, but weights holds " + weights.length);
    }
    for (int s = 0; s < n; s++) {
      if (!(weights[s] >= 0) || weights[s] == Float.POSITIVE_INFINITY) {
        throw new IllegalArgumentException("weight " + weights[s] + " of sample " + s
            + " is not a finite number >= 0");
      }
    }
  }

  /** Writes the softmax of each row of {@code logits} into {@code probabilities}. */
  public static void softmax(float[] logits, int n, int classes, float[] probabilities) {
    for (int s = 0; s < n; s++) {
      int o = s * classes;
      float max = Float.NEGATIVE_INFINITY;
      for (int c = 0; c < classes; c++) {
        max = Math.max(max, logits[o + c]);
      }
      double sum = 0;
      for (int c = 0; c < classes; c++) {
        sum += Math.exp(logits[o + c] - max);
      }
      for (int c = 0; c < classes; c++) {
        probabilities[o + c] = (float) (Math.exp(logits[o + c] - max) / sum);
      }
    }
  }
}
