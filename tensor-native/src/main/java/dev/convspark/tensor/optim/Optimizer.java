package dev.convspark.tensor.optim;

/**
 * Updates a flat parameter buffer from a flat gradient buffer of the same layout. Any state (the
 * step count, moment estimates) is part of the optimizer and saved with the model.
 */
public interface Optimizer {

  /** The optimizer's name as written in model files: {@code sgd} or {@code adam}. */
  String name();

  /** The base learning rate. */
  float learningRate();

  /**
   * Makes the learning rate follow {@code schedule} (a factor of the base rate per update; constant
   * until this is called). Not saved with the state: the step count is, so a restored optimizer
   * given the same schedule continues it exactly.
   */
  void setSchedule(LearningRateSchedule schedule);

  /** The learning rate of the step begun last: the base rate times the schedule's factor. */
  float currentLearningRate();

  /** Applies one update: {@code params} changes in place. */
  default void step(float[] params, float[] grads) {
    beginStep();
    update(params, grads, 0, params.length);
  }

  /**
   * Starts an update that is then applied range by range with {@link #update}, so a backend can
   * spread one step over its threads: every index must be updated exactly once per step.
   */
  void beginStep();

  /** Updates {@code params[from, to)} from {@code grads[from, to)} within the step begun last. */
  void update(float[] params, float[] grads, int from, int to);

  /** The number of updates applied so far. */
  long steps();

  /** The state to save: step count and any per-parameter arrays (empty for SGD). */
  OptimizerState state();

  /**
   * Builds an optimizer by name ({@code sgd} or {@code adam}, case-insensitive) for
   * {@code paramCount} parameters.
   *
   * @throws IllegalArgumentException for an unknown name or a learning rate that is not positive
   *                                  and finite
   */
  static Optimizer create(String name, float learningRate, int paramCount) {
    return switch (name.toLowerCase(java.util.Locale.ROOT)) {
      case "sgd" -> new Sgd(learningRate);
      case "adam" -> new Adam(learningRate, paramCount);
      default -> throw new IllegalArgumentException("optimizer must be 'sgd' or 'adam' but was '" + name + "'");
    };
  }

  /** Rebuilds an optimizer from saved state. */
  static Optimizer restore(OptimizerState s, int paramCount) {
    Optimizer o = create(s.name(), s.learningRate(), paramCount);
    if (o instanceof Adam a) {
      a.restore(s);
    } else if (o instanceof Sgd g) {
      g.restore(s);
    }
    return o;
  }
}
