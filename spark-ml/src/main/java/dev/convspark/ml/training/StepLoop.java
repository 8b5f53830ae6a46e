package dev.convspark.ml.training;

import dev.convspark.ml.exchange.GradientExchange;
import dev.convspark.ml.exchange.LocalExchange;
import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.io.ModelState;
import dev.convspark.tensor.optim.Optimizer;
import dev.convspark.tensor.optim.OptimizerState;
import dev.convspark.tensor.spec.ModelSpec;
import dev.convspark.tensor.train.Trainer;
import java.io.IOException;
import org.apache.spark.BarrierTaskContext;

/**
 * The steps of a barrier worker that trains (a unit's first worker): each step's gradient, its sum
 * over the units and the update ({@link GradientExchange#step}), the validation when due, the
 * checkpoints and the progress; then the result, which worker 0 hands to the driver.
 */
final class StepLoop {

  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(StepLoop.class);

  private final Settings s;
  /** The run's key (see {@link BarrierTraining#HANDED_OVER}). */
  private final String key;

  StepLoop(Settings s, String key) {
    this.s = s;
    this.key = key;
  }

  /**
   * Runs the steps after {@code start}: {@code gradient} leaves each step's gradient of
   * {@code count} samples in the runner, {@code exchange} sums it over the workers and applies
   * the update; with validation, the validation rows of {@code blocks} are evaluated when due
   * and the evaluations summed over the units.
   */
  TrainResult run(BarrierTaskContext ctx, int[] members, StepGradient gradient, int count, GradientExchange exchange,
                  Start from, int start, ModelRunner runner, Block[] blocks) throws IOException {
    int rank = members[0];
    ModelSpec spec = ModelSpec.parse(s.spec());
    runner.setKeepProb(s.keepProb());
    runner.copyParametersFrom(from.params());
    Optimizer opt = from.optimizer();
    double[] loss = from.loss();
    double[] accuracy = from.accuracy();
    Validation validation = from.validation();
    // A fresh copy of the current weights: for a checkpoint, the best evaluation, the result.
    java.util.function.Supplier<float[]> weightsNow = () -> {
      float[] w = new float[runner.paramCount()];
      runner.copyParametersTo(w);
      return w;
    };
    int last = start;
    if (start > 0 && rank == 0) {
      LOG.info("resuming at step {} from the checkpoint in {}", start, s.checkpoints().dir());
    }
    int[] failAt = failAt(ctx);
    // Scratch for exchanges that copy the gradients out.
    float[] grads = new float[runner.paramCount()];
    // Every unit updates its share of the parameters when all keep them in the heap (the CPU).
    boolean sharded = exchange.shardUpdates(runner.hostGradients() != null && runner.hostParameters() != null);
    if (sharded && rank == 0) {
      LOG.info("the optimizer's update is sharded between the units");
    }
    // Units on GPUs sum their steps as OffHeapStep says, when every unit is on one.
    exchange.offHeapSteps(runner.hostGradients() == null);
    double[] stats = new double[3];
    long t0 = System.nanoTime();
    // The time from each step's gradient to its update: the exchange not hidden behind the backward pass, and the update.
    long exchangeNanos = 0;
    for (int step = start + 1; step <= s.steps() && (validation == null || !validation.stopped()); step++) {
      // A unit's first worker fails for any of its workers.
      if (failAt != null && java.util.Arrays.stream(members).anyMatch(m -> m == failAt[0]) && failAt[1] == step) {
        if (failAt[2] == 1) {
          LOG.error("{}: halting this executor's JVM at step {} (worker {})", BarrierTraining.FAIL_AT_STEP, step, rank);
          Runtime.getRuntime().halt(137);
        }
        throw new IllegalStateException("injected failure of worker " + rank + " at step " + step
            + " (" + BarrierTraining.FAIL_AT_STEP + ", first attempt only)");
      }
      exchange.beginStep(runner, opt, count);
      GradientSum g = gradient.compute(Trainer.stepSeed(s.seed(), step));
      stats[0] = g.lossSum;
      stats[1] = g.correct;
      stats[2] = g.count;
      int current = step;
      long computed = System.nanoTime();
      exchange.step(runner, opt, grads, stats, sums -> {
        if (!Double.isFinite(sums[0])) {
          // Every replica sees the same sum, so all stop here together.
          throw new Deterministic(new ArithmeticException("loss became " + sums[0] + " at step " + current
              + "; the model diverged (try a lower learningRate, or check the features for huge values)"));
        }
      });
      exchangeNanos += System.nanoTime() - computed;
      loss[step - 1] = stats[0] / stats[2];
      accuracy[step - 1] = stats[1] / stats[2];
      last = step;
      if (validation != null && validation.plan().due(step, s.steps())) {
        double[] sums = Validation.sum(exchange.gather(Validation.encode(Validation.evaluate(runner, blocks)),
            BarrierTraining.TIMEOUT_MS));
        try {
          // Only worker 0 hands back a model, so only it keeps the best weights.
          validation.record(step, sums, rank == 0 ? weightsNow : null);
        } catch (IllegalArgumentException e) {
          throw new Deterministic(e);
        }
        if (rank == 0) {
          ProgressReports.validated(step, validation);
        }
      }
      boolean stopping = validation != null && validation.stopped();
      if (s.checkpoints() != null && (step % s.checkpointInterval() == 0 || step == s.steps() || stopping)) {
        float[] w = weightsNow.get();
        // Sharded updates left each unit's moments current for its share only: made whole on
        // every unit (a collective call); only rank 0 saves.
        exchange.syncOptimizer(opt);
        OptimizerState optState = null;
        if (rank == 0) {
          runner.syncOptimizer(opt);
          optState = opt.state();
        }
        ModelState state = new ModelState(spec, w, optState);
        try {
          // Every replica holds the same weights, so every one checks them and all stop together.
          Checkpoints.checkFinite(state, step);
        } catch (ArithmeticException e) {
          throw new Deterministic(e);
        }
        if (rank == 0) {
          s.checkpoints().save(step, state, loss, accuracy, validation == null ? null : validation.history(),
              validation == null ? null : validation.bestOlderThan(step));
        }
      }
      if (rank == 0) {
        ProgressReports.report(step, s.steps(), start, loss[step - 1], accuracy[step - 1], stats[2], t0, validation);
        if (s.progress() != null) {
          s.progress().publish(step, loss[step - 1], accuracy[step - 1], validation);
        }
      }
    }
    if (rank != 0) {
      return null;
    }
    float[] weights = validation == null ? weightsNow.get() : validation.modelWeights(weightsNow);
    TrainResult result = new TrainResult(weights, java.util.Arrays.copyOf(loss, last),
        java.util.Arrays.copyOf(accuracy, last), validation == null ? null : validation.history(), start,
        (System.nanoTime() - t0) / 1e9, exchangeNanos / 1e9);
    if (key.startsWith(LocalExchange.JVM_ID + " ")) {
      // The driver is in this JVM: the shuffle carries only a marker.
      BarrierTraining.HANDED_OVER.put(key, result);
      return new TrainResult(null, null, null, null, start, result.stepSeconds(), result.exchangeSeconds());
    }
    return result;
  }

  private static int[] failAt(BarrierTaskContext ctx) {
    String v = ctx.getLocalProperty(BarrierTraining.FAIL_AT_STEP);
    if (v == null || ctx.stageAttemptNumber() > 0) {
      return null;
    }
    String[] p = v.split(":");
    return new int[] {Integer.parseInt(p[0]), Integer.parseInt(p[1]), p.length > 2 && p[2].equals("halt") ? 1 : 0};
  }

  /** One step's gradient, left in the runner, for the step's seed. */
  interface StepGradient {
    GradientSum compute(long stepSeed);
  }
}
