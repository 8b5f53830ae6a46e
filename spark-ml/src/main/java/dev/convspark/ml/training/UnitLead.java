package dev.convspark.ml.training;

import dev.convspark.ml.exchange.GradientExchange;
import dev.convspark.ml.exchange.LocalExchange;
import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.optim.Optimizer;
import java.io.IOException;

/**
 * The exchange of a unit's first worker, which trains the unit's workers as one: it stops when
 * another worker of the unit has stopped or its own task was killed; with {@code over}, it sums
 * the unit's gradient with the other units', else (one unit: the gradient is the mean
 * already) it applies the update itself. Both null: a worker alone in the run.
 */
final class UnitLead implements GradientExchange {
  private final LocalExchange group;
  private final GradientExchange over;

  UnitLead(LocalExchange group, GradientExchange over) {
    this.group = group;
    this.over = over;
  }

  @Override
  public String[] gather(String mine, int timeoutMs) throws IOException {
    return over == null ? new String[] {mine} : over.gather(mine, timeoutMs);
  }

  @Override
  public void beginStep(ModelRunner runner, Optimizer optimizer, int count) throws IOException {
    if (over != null) {
      over.beginStep(runner, optimizer, count);
    }
  }

  @Override
  public boolean shardUpdates(boolean canHere) throws IOException {
    return over != null && over.shardUpdates(canHere);
  }

  @Override
  public boolean offHeapSteps(boolean here) throws IOException {
    return over != null && over.offHeapSteps(here);
  }

  @Override
  public void syncOptimizer(Optimizer optimizer) throws IOException {
    if (over != null) {
      over.syncOptimizer(optimizer);
    }
  }

  @Override
  public void allreduce(float[] data, double[] stats) throws IOException {
    if (group != null) {
      group.checkOthers();
    }
    if (over != null) {
      over.allreduce(data, stats);
    }
  }

  @Override
  public void step(ModelRunner runner, Optimizer optimizer, float[] scratch, double[] stats,
                   java.util.function.Consumer<double[]> check) throws IOException {
    if (group != null) {
      group.checkOthers();
    }
    if (over != null) {
      over.step(runner, optimizer, scratch, stats, check);
    } else if (group != null) {
      check.accept(stats);
      runner.applyGradients(optimizer);
    } else {
      GradientExchange.alone(runner, optimizer, stats, check);
    }
  }

  @Override
  public void close() {
    // The group and the exchange over the units are closed by the worker that opened them.
  }
}
