package dev.convspark.ml.training;

import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.layers.SoftmaxCrossEntropy;
import java.io.Serializable;
import java.util.Arrays;
import java.util.function.Supplier;

/**
 * Validation while training ({@code validationIndicatorCol}): the rows marked true are held out of
 * training and evaluated every {@code validationInterval} steps and at the last one. This class
 * records those evaluations and decides early stopping from them alone, so a run resumed from a
 * checkpoint (which keeps the history) decides exactly as an uninterrupted one. Every training
 * replica sees the same summed evaluations and so stops at the same step.
 */
public final class Validation {

  /** Rows scored per engine call when evaluating. */
  private static final int BATCH = 500;

  /** How a fit validates, shipped with its tasks. */
  public record Plan(IndicatorReader indicator, int interval, int patience, double tol) implements Serializable {
    private static final long serialVersionUID = 1L;

    /** Whether step {@code step} of {@code steps} is evaluated. */
    boolean due(int step, int steps) {
      return step % interval == 0 || step == steps;
    }

    /** Whether the model keeps the weights of the best evaluation rather than the last step's. */
    public boolean keepsBest() {
      return patience > 0;
    }
  }

  /**
   * What validation recorded: the steps evaluated, the mean loss and accuracy of the validation
   * rows after each, the step of the lowest loss, and whether early stopping ended the run.
   */
  public record History(int[] steps, double[] loss, double[] accuracy, int bestStep, boolean stopped) implements Serializable {
    private static final long serialVersionUID = 1L;

    /** The evaluations up to and including step {@code step}. */
    History upTo(int step) {
      int n = 0;
      while (n < steps.length && steps[n] <= step) {
        n++;
      }
      return new History(Arrays.copyOf(steps, n), Arrays.copyOf(loss, n), Arrays.copyOf(accuracy, n), 0, false);
    }
  }

  private final Plan plan;
  private int[] steps = new int[16];
  private double[] loss = new double[16];
  private double[] accuracy = new double[16];
  private int n;
  private double bestLoss = Double.POSITIVE_INFINITY;
  private int bestStep;
  private int sinceBest;
  /** The best evaluation's weights, where the model keeps them and this replica holds them; else null. */
  private float[] best;

  Validation(Plan plan) {
    this.plan = plan;
  }

  /** A validation that has recorded {@code h}'s evaluations, as if it had made them. */
  static Validation restore(Plan plan, History h) {
    Validation v = new Validation(plan);
    for (int i = 0; i < h.steps().length; i++) {
      v.add(h.steps()[i], h.loss()[i], h.accuracy()[i]);
    }
    return v;
  }

  /** Holds {@code weights} as the best evaluation's (a restored run's, read from its checkpoint). */
  void keepBest(float[] weights) {
    best = weights;
  }

  Plan plan() {
    return plan;
  }

  /**
   * Records the evaluation after step {@code step} from the summed
   * {@code {lossSum, correct, count, weightSum}} of every replica's validation rows (with weights,
   * the loss and the right predictions weighted: the mean is over the weights). When it is the best so far and the model keeps the best
   * weights, takes a copy of the current ones from {@code weights} (null on a replica that hands
   * back no model).
   *
   * @throws IllegalArgumentException when no row is marked for validation, naming the column
   */
  void record(int step, double[] sums, Supplier<float[]> weights) {
    if (sums[2] == 0) {
      throw new IllegalArgumentException("validationIndicatorCol '" + plan.indicator().column() + "' marks no row"
          + " true, so there is nothing to validate on; mark the validation rows true or leave the param unset");
    }
    if (!(sums[3] > 0)) {
      throw new IllegalArgumentException("weightCol gives every validation row (validationIndicatorCol '"
          + plan.indicator().column() + "' true) a weight of 0, so there is nothing to validate on");
    }
    if (add(step, sums[0] / sums[3], sums[1] / sums[3]) && plan.keepsBest() && weights != null) {
      best = weights.get();
    }
  }

  /** The best evaluation's weights when the model keeps them and they are older than {@code step}, else null. */
  float[] bestOlderThan(int step) {
    return best != null && bestStep < step ? best : null;
  }

  /** The weights the model gets: the best evaluation's when it keeps them, else {@code current}'s. */
  float[] modelWeights(Supplier<float[]> current) {
    return best != null ? best : current.get();
  }

  private boolean add(int step, double meanLoss, double acc) {
    if (n == steps.length) {
      steps = Arrays.copyOf(steps, 2 * n);
      loss = Arrays.copyOf(loss, 2 * n);
      accuracy = Arrays.copyOf(accuracy, 2 * n);
    }
    steps[n] = step;
    loss[n] = meanLoss;
    accuracy[n] = acc;
    n++;
    boolean better = meanLoss < bestLoss - plan.tol();
    if (better) {
      bestLoss = meanLoss;
      bestStep = step;
      sinceBest = 0;
    } else {
      sinceBest++;
    }
    return better;
  }

  /** Whether early stopping ends the run: {@code earlyStoppingPatience} evaluations without improvement. */
  boolean stopped() {
    return plan.patience() > 0 && sinceBest >= plan.patience();
  }

  /** The step of the lowest validation loss so far (0 before the first evaluation). */
  int bestStep() {
    return bestStep;
  }

  /** The latest evaluation's mean loss and accuracy, or NaNs before the first. */
  double[] latest() {
    return n == 0 ? new double[] {Double.NaN, Double.NaN} : new double[] {loss[n - 1], accuracy[n - 1]};
  }

  History history() {
    return new History(Arrays.copyOf(steps, n), Arrays.copyOf(loss, n), Arrays.copyOf(accuracy, n), bestStep, stopped());
  }

  /**
   * Scores the runner's current weights on the validation rows of {@code blocks} (their
   * {@link Block#held} parts): {@code {lossSum, correct, count, weightSum}}, the loss and the right
   * predictions weighted by the rows' weights when they have some.
   */
  static double[] evaluate(ModelRunner runner, Block[] blocks) {
    int classes = runner.spec().numClasses();
    double[] sums = new double[4];
    float[] x = null;
    int[] y = new int[BATCH];
    float[] w = new float[BATCH];
    float[] logits = new float[BATCH * classes];
    for (Block block : blocks) {
      Block b = block == null ? null : block.held;
      if (b == null) {
        continue;
      }
      x = x == null ? new float[BATCH * b.size] : x;
      for (int from = 0; from < b.count; from += BATCH) {
        int k = Math.min(BATCH, b.count - from);
        for (int i = 0; i < k; i++) {
          b.copyFeatures(from + i, x, i * b.size);
          y[i] = b.label(from + i);
          w[i] = b.weight(from + i);
        }
        runner.predictLogits(x, k, logits);
        SoftmaxCrossEntropy.Result r = SoftmaxCrossEntropy.compute(logits, y, b.weighted() ? w : null, k, classes, 1f,
            null);
        sums[0] += r.lossSum();
        sums[1] += b.weighted() ? weightedCorrect(logits, y, w, k, classes) : r.correct();
        sums[2] += k;
        sums[3] += b.weighted() ? sumOf(w, k) : k;
      }
    }
    return sums;
  }

  /** The sum of the weights of the rows whose largest logit (the first of equals) is their label's. */
  private static double weightedCorrect(float[] logits, int[] y, float[] w, int k, int classes) {
    double sum = 0;
    for (int i = 0; i < k; i++) {
      int best = 0;
      for (int c = 1; c < classes; c++) {
        best = logits[i * classes + c] > logits[i * classes + best] ? c : best;
      }
      sum += best == y[i] ? w[i] : 0;
    }
    return sum;
  }

  private static double sumOf(float[] w, int k) {
    double sum = 0;
    for (int i = 0; i < k; i++) {
      sum += w[i];
    }
    return sum;
  }

  /** One replica's evaluation as text for a gather (exact: the shortest decimal of each double). */
  static String encode(double[] sums) {
    return sums[0] + "," + sums[1] + "," + sums[2] + "," + sums[3];
  }

  /** The sum of every replica's evaluation, added in rank order. */
  static double[] sum(String[] all) {
    double[] s = new double[4];
    for (String a : all) {
      String[] p = a.split(",");
      for (int i = 0; i < 4; i++) {
        s[i] += Double.parseDouble(p[i]);
      }
    }
    return s;
  }
}
