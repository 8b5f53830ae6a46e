package dev.convspark.ml.exchange;

import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.optim.Optimizer;
import java.io.IOException;

/**
 * How the barrier workers of one training run talk to each other once Spark has introduced them:
 * a small gather of strings at the start, then one gradient sum per step. Every worker gets the
 * same sums, added in an order fixed by the run's size alone, so the replicas stay bit-identical
 * and the result does not depend on timing:
 * <ul>
 *   <li>{@link RingAllreduce}: TCP sockets in a ring, between the units of workers in different
 *       JVMs (see {@code BarrierTraining}); each unit sends and receives 2 (N - 1) / N of the
 *       gradient a step, whatever the number N of units;</li>
 *   <li>{@link StarAllreduce}: TCP sockets to rank 0, which adds in rank order (the exchange before
 *       the ring; kept for comparison, {@code bench scaling}, and the local property
 *       {@code convspark.exchange=star});</li>
 *   <li>{@link LocalExchange}: shared memory, for workers that are tasks of one JVM on different
 *       devices (its sums are the star's, bit for bit).</li>
 * </ul>
 *
 * <p>Internal to convspark: public only so that the barrier training and the benchmarks, in other
 * packages, can use it.
 */
public interface GradientExchange extends AutoCloseable {

  /**
   * Every worker's {@code mine}, in rank order (short strings: sizes, error messages), waiting up
   * to {@code timeoutMs} for the others.
   */
  String[] gather(String mine, int timeoutMs) throws IOException;

  /**
   * Called before each step's gradient is computed, with the number of samples it will sum and
   * the optimizer {@link #step} will apply: an exchange that sends the gradients while the
   * backward pass is still finishing them starts here ({@link SocketExchange}); the step ends in
   * {@link #step} as always. Here: nothing.
   */
  default void beginStep(ModelRunner runner, Optimizer optimizer, int count) throws IOException {
  }

  /**
   * Called by every worker once, before the first step, with whether its runner keeps the
   * parameters and gradients in this JVM's heap ({@code canHere}); true when every worker can and
   * this exchange then shards the optimizer's update between the workers (see
   * {@link RingAllreduce}). Here: false, every worker applies the whole update.
   */
  default boolean shardUpdates(boolean canHere) throws IOException {
    return false;
  }

  /**
   * Called by every worker once, before the first step, with whether its runner keeps its
   * gradients off this JVM's heap ({@code here}: on a GPU); true when every worker's does, and
   * this exchange's steps then go as {@link OffHeapStep} says (at small batches, the largest dense
   * layer's weight gradient in factored form). A run whose workers are not all on GPUs
   * ({@code device=auto} where an executor has none) sums whole gradients, as every worker can.
   * Here: one float summed over the workers, each worker's 1 where its gradients are in the heap.
   */
  default boolean offHeapSteps(boolean here) throws IOException {
    float[] inHeap = {here ? 0f : 1f};
    allreduce(inHeap, new double[] {1});
    return inHeap[0] == 0f;
  }

  /**
   * Makes {@code optimizer}'s state whole again on every worker after sharded updates (each
   * worker's moments are current only for the part it updates): a collective call, made by every
   * worker before a checkpoint reads {@link Optimizer#state()}. Here: nothing to do.
   */
  default void syncOptimizer(Optimizer optimizer) throws IOException {
  }

  /** Replaces {@code data} and {@code stats} with their sums over all workers, added in rank order. */
  void allreduce(float[] data, double[] stats) throws IOException;

  /**
   * Sums {@code grads} and {@code stats} over all workers and divides the gradient sum by the total
   * sample count, the last entry of the summed {@code stats}. Returns the array holding the mean:
   * {@code grads} itself or a buffer of the exchange, valid until the next call.
   */
  default float[] mean(float[] grads, double[] stats) throws IOException {
    allreduce(grads, stats);
    return divideByCount(grads, stats);
  }

  /** Divides {@code sums} in place by the sample count, the last entry of {@code stats}; returns it. */
  static float[] divideByCount(float[] sums, double[] stats) {
    float inv = (float) (1 / stats[stats.length - 1]);
    for (int i = 0; i < sums.length; i++) {
      sums[i] *= inv;
    }
    return sums;
  }

  /**
   * One training step's synchronisation, after {@code runner.computeGradients}: sums the
   * gradients and {@code stats} over all workers, shows the summed stats to {@code check} (which
   * throws to stop, and every worker sees the same sums), then applies the optimizer to the mean
   * gradient so that every replica holds the same new parameters. Here: each replica gets the
   * mean of its gradients where they live in this JVM's heap (else copied out through
   * {@code scratch} and back) and applies {@code optimizer} itself.
   */
  default void step(ModelRunner runner, Optimizer optimizer, float[] scratch, double[] stats,
                    java.util.function.Consumer<double[]> check) throws IOException {
    float[] live = runner.hostGradients();
    float[] grads = live != null ? live : scratch;
    if (live == null) {
      runner.copyGradientsTo(scratch);
    }
    float[] mean = mean(grads, stats);
    check.accept(stats);
    if (mean != live) {
      runner.copyGradientsFrom(mean);
    }
    runner.applyGradients(optimizer);
  }

  /**
   * The step of a worker alone: the gradients need no sum, only the division by the count, done
   * where they live (no 13 MB copied out and back every step, from the heap or from a GPU).
   */
  static void alone(ModelRunner runner, Optimizer optimizer, double[] stats,
                    java.util.function.Consumer<double[]> check) {
    check.accept(stats);
    runner.scaleGradients((float) (1 / stats[stats.length - 1]));
    runner.applyGradients(optimizer);
  }

  @Override
  void close() throws IOException;
}
