package dev.convspark.tensor.io;

import dev.convspark.tensor.optim.OptimizerState;
import dev.convspark.tensor.spec.ModelSpec;

/**
 * Everything that makes a trained model: the spec, the flat parameters and, optionally, the
 * optimizer's state so training can continue exactly.
 *
 * @param spec      the layer stack
 * @param params    the flat parameter buffer, {@code spec.paramCount()} floats
 * @param optimizer the optimizer state, or null when not kept
 */
public record ModelState(ModelSpec spec, float[] params, OptimizerState optimizer) {

  /** Checks that the arrays fit the spec. */
  public ModelState {
    if (params.length != spec.paramCount()) {
      throw new IllegalArgumentException("model " + spec.name() + " has " + spec.paramCount()
          + " parameters but " + params.length + " were given");
    }
    if (optimizer != null) {
      for (float[] m : optimizer.moments()) {
        if (m.length != params.length) {
          throw new IllegalArgumentException("optimizer state arrays must hold " + params.length
              + " floats but one holds " + m.length);
        }
      }
    }
  }
}
