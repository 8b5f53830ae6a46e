package dev.convspark.tensor.train;

import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.layers.SoftmaxCrossEntropy;
import dev.convspark.tensor.optim.Optimizer;

/**
 * Single-replica training: one optimizer step per batch, with the gradient of the mean (or, with
 * {@code lossScale = 1}, the summed) cross-entropy. A non-finite loss stops training with the
 * step number rather than carrying NaN weights forward.
 */
public final class Trainer {

  private final ModelRunner runner;
  private final Optimizer optimizer;
  private final long seed;
  private long step;
  private int[] batchIdx;
  private float[] batchX;
  private int[] batchY;

  /**
   * @param runner    the replica to train; its parameters are used as they are
   * @param optimizer the update rule
   * @param keepProb  dropout keep probability while training, in (0, 1]
   * @param seed      seeds the dropout masks (one per step)
   */
  public Trainer(ModelRunner runner, Optimizer optimizer, float keepProb, long seed) {
    this.runner = runner;
    this.optimizer = optimizer;
    this.seed = seed;
    runner.setKeepProb(keepProb);
  }

  /**
   * One step on {@code n} samples.
   *
   * @param lossScale {@code 1/n} for the mean loss (the tutorial's), 1 for the sum
   * @throws ArithmeticException when the loss is NaN or infinite, naming the step
   */
  public SoftmaxCrossEntropy.Result step(float[] images, int[] labels, int n, float lossScale) {
    step++;
    SoftmaxCrossEntropy.Result r = runner.computeGradients(images, labels, n, lossScale, stepSeed(seed, step));
    if (!Double.isFinite(r.lossSum())) {
      throw new ArithmeticException("loss became " + r.lossSum() + " at step " + step
          + "; the model diverged (try a lower learningRate, or check the input for NaN or huge values)");
    }
    runner.applyGradients(optimizer);
    return r;
  }

  /**
   * One step on the next {@code batch} samples that {@code sampler} draws from a data set held in
   * memory ({@code images}: samples of the spec's input shape one after another).
   */
  public SoftmaxCrossEntropy.Result step(BatchSampler sampler, float[] images, int[] labels, int batch, float lossScale) {
    int size = runner.spec().inputShape().size();
    if (batchX == null || batchY.length != batch) {
      batchIdx = new int[batch];
      batchX = new float[batch * size];
      batchY = new int[batch];
    }
    sampler.next(batchIdx, batch);
    gather(images, labels, size, batchIdx, batch, batchX, batchY);
    return step(batchX, batchY, batch, lossScale);
  }

  /** The dropout seed of a step: every replica that shares {@code seed} and the step agrees on it. */
  public static long stepSeed(long seed, long step) {
    return seed * 0x9E3779B97F4A7C15L + step;
  }

  /** Steps taken. */
  public long steps() {
    return step;
  }

  /** The optimizer. */
  public Optimizer optimizer() {
    return optimizer;
  }

  /**
   * Top-1 accuracy of {@code runner} on {@code n} samples, evaluated in batches of
   * {@code batch} (dropout off).
   */
  public static double accuracy(ModelRunner runner, float[] images, int[] labels, int n, int batch) {
    int classes = runner.spec().numClasses();
    float[] logits = new float[batch * classes];
    long correct = 0;
    for (int s = 0; s < n; s += batch) {
      int m = Math.min(batch, n - s);
      runner.predictLogits(images, s, m, logits);
      for (int i = 0; i < m; i++) {
        int best = 0;
        for (int c = 1; c < classes; c++) {
          if (logits[i * classes + c] > logits[i * classes + best]) {
            best = c;
          }
        }
        if (best == labels[s + i]) {
          correct++;
        }
      }
    }
    return (double) correct / n;
  }

  /** Copies the samples at {@code indices[0..n)} into {@code x} and {@code y}. */
  public static void gather(float[] images, int[] labels, int sampleSize, int[] indices, int n, float[] x, int[] y) {
    for (int i = 0; i < n; i++) {
      System.arraycopy(images, indices[i] * sampleSize, x, i * sampleSize, sampleSize);
      y[i] = labels[indices[i]];
    }
  }
}
