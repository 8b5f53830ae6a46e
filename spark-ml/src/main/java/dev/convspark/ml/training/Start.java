package dev.convspark.ml.training;

import dev.convspark.tensor.Network;
import dev.convspark.tensor.optim.Optimizer;
import dev.convspark.tensor.spec.ModelSpec;
import java.io.IOException;

/**
 * Where training starts in both sync modes: the weights, optimizer, history and validation of
 * checkpoint {@code step}, or at step 0 the initial model's weights or else the seeded ones, a
 * fresh optimizer and empty histories (each {@code s.steps()} long). {@code validation} is null
 * without validation; it holds the best evaluation's weights when the model keeps them.
 */
record Start(float[] params, Optimizer optimizer, double[] loss, double[] accuracy, Validation validation) {

  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(Start.class);

  static Start of(Settings s, ModelSpec spec, int step) throws IOException {
    double[] loss = new double[s.steps()];
    double[] accuracy = new double[s.steps()];
    Validation.Plan plan = s.validation();
    if (step == 0) {
      Network init = new Network(spec);
      float[] from = s.initialWeights() == null ? null : s.initialWeights().value();
      if (from != null && from.length == init.paramCount()) {
        System.arraycopy(from, 0, init.params(), 0, init.paramCount());
      } else if (s.heInit()) {
        init.initialize(s.seed(), ModelSpec.WeightInit.HE_NORMAL, 0f);
      } else {
        init.initialize(s.seed());
      }
      if (from != null && from.length < init.paramCount()) {
        // A new head (see CnnClassifier's initialModel): the layers before it from the saved weights.
        System.arraycopy(from, 0, init.params(), 0, from.length);
      }
      Optimizer fresh = Optimizer.create(s.optimizer(), s.learningRate(), init.paramCount());
      fresh.setSchedule(s.schedule());
      return new Start(init.params(), fresh, loss, accuracy, plan == null ? null : new Validation(plan));
    }
    Checkpoints.Checkpoint c = s.checkpoints().load(step, spec, s.optimizer());
    System.arraycopy(c.loss(), 0, loss, 0, step);
    System.arraycopy(c.accuracy(), 0, accuracy, 0, step);
    float[] params = c.state().params();
    // The step count is in the checkpoint: the schedule continues where it was.
    Optimizer restored = Optimizer.restore(c.state().optimizer(), params.length);
    restored.setSchedule(s.schedule());
    Validation validation = null;
    if (plan != null) {
      if (c.validation() == null) {
        LOG.info("checkpoint step {} was written without validation: validation starts after it", step);
      }
      validation = c.validation() == null ? new Validation(plan) : Validation.restore(plan, c.validation());
      if (plan.keepsBest() && validation.bestStep() > 0) {
        float[] best = validation.bestStep() == step ? params.clone() : c.best();
        if (best == null) {
          throw new IOException(s.checkpoints().dir() + ": checkpoint step " + step + " lacks the weights of its best"
              + " validation step " + validation.bestStep() + " (step-" + step + ".best.cspk)");
        }
        validation.keepBest(best);
      }
    }
    return new Start(params, restored, loss, accuracy, validation);
  }
}
