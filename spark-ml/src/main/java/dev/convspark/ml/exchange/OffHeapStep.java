package dev.convspark.ml.exchange;

import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.optim.Optimizer;
import java.io.IOException;
import java.util.Arrays;
import java.util.function.Consumer;

/**
 * The step of workers whose gradients are not in this JVM's heap (each on a GPU): what crosses
 * between the device and the host, and between the workers, is the gradient, or at small batches
 * the gradient in factored form ({@link ModelRunner#factoredDense}): the largest dense layer's
 * weight gradient {@code x^T dy} as every worker's samples' input rows {@code x} and output-gradient
 * rows {@code dy}, which each worker's device multiplies into the summed weight gradient.
 * deep-mnist at a global batch of 50: 0.27 M floats out of each device, 0.27 M summed between the
 * workers and back into each device, against 3.27 M each way.
 *
 * <p>A step is two sums over the workers ({@link GradientExchange#allreduce}): first every
 * worker's sample count, each in its own place, with the step's statistics, which {@code check}
 * sees before anything changes; from the counts every worker decides alike whether the step is
 * factored (the samples' rows, {@code samples x (inputs + units)} floats, fewer than the layer's
 * {@code inputs x units} weights: {@link ModelRunner.DenseWeights#fewerAsFactors}, the CPU ring's
 * rule too), and where each worker's rows go. Then the array: the gradient, or the gradient but the layer's weights followed by every
 * worker's rows in rank order, each worker's own rows in its place and zeros elsewhere (the sum
 * of one value and zeros is that value, bit for bit). Every worker so holds the same array and
 * computes the same product: the replicas stay identical. The mean is taken on the device
 * ({@link ModelRunner#scaleGradients}), then the update.
 */
final class OffHeapStep {

  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(OffHeapStep.class);

  /** The factored array of the last factored steps, reused while its length holds (a run's counts do not change). */
  private float[] factored = new float[0];
  /** Whether this exchange has said how its steps go (once, by worker 0). */
  private boolean said;

  /**
   * One step for {@code runner}, worker {@code rank} of {@code size} summing through {@code exchange}
   * (see the class comment); {@code scratch} holds a gradient.
   */
  void step(GradientExchange exchange, int rank, int size, ModelRunner runner, Optimizer optimizer, float[] scratch,
            double[] stats, Consumer<double[]> check) throws IOException {
    ModelRunner.DenseWeights d = runner.factoredDense();
    double mine = stats[stats.length - 1];
    float[] counts = new float[size];
    // Sample counts are whole numbers far under 2^24: exact in a float, and so is their sum.
    counts[rank] = (float) mine;
    exchange.allreduce(counts, stats);
    check.accept(stats);
    long[] first = new long[size + 1];
    for (int u = 0; u < size; u++) {
      first[u + 1] = first[u] + (long) counts[u];
    }
    long total = first[size];
    boolean factor = d != null && d.fewerAsFactors(total);
    if (!said && rank == 0) {
      said = true;
      if (factor) {
        LOG.info("each step's gradient leaves the devices in factored form: the dense layer of {} x {} weights as {}"
            + " samples' rows, {} floats where the gradient has {}", d.inputs(), d.units(), total,
            ModelRunner.factoredLength(runner.paramCount(), d, total), runner.paramCount());
      } else {
        LOG.info("each step's gradient leaves the devices whole: {} floats ({} samples a step)", runner.paramCount(),
            total);
      }
    }
    if (!factor) {
      runner.copyGradientsTo(scratch);
      exchange.allreduce(scratch, new double[] {mine});
      runner.copyGradientsFrom(scratch);
    } else {
      int length = (int) ModelRunner.factoredLength(runner.paramCount(), d, total);
      if (factored.length != length) {
        factored = new float[length];
      }
      float[] a = factored;
      int rest = runner.paramCount() - d.inputs() * d.units();
      int xAt = rest;
      int dyAt = (int) (rest + total * d.inputs());
      Arrays.fill(a, 0f);
      if (mine > 0) {
        runner.copyFactoredGradientsTo(a, (int) mine, (int) (xAt + first[rank] * d.inputs()),
            (int) (dyAt + first[rank] * d.units()));
      }
      exchange.allreduce(a, new double[] {mine});
      runner.copyFactoredGradientsFrom(a, (int) total, xAt, dyAt);
    }
    runner.scaleGradients((float) (1 / stats[stats.length - 1]));
    runner.applyGradients(optimizer);
  }
}
