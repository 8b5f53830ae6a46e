package dev.convspark.tensor.optim;

import java.io.Serializable;
import java.util.Arrays;

/**
 * How the learning rate changes over training, as a factor of the optimizer's base rate for
 * each update {@code t = 1, 2, ...} (its step count, which checkpoints keep, so a resumed run
 * continues the schedule exactly):
 * <ul>
 *   <li>{@link #constant()}: 1 (the tutorial's recipe);</li>
 *   <li>{@link #piecewise}: {@code factors[i]} from update {@code boundaries[i-1] + 1} on (the first
 *       factor before the first boundary), as TensorFlow's {@code PiecewiseConstantDecay};</li>
 *   <li>{@link #cosine}: {@code 0.5 (1 + cos(pi min(t, decaySteps) / decaySteps))}, down to 0 at
 *       {@code decaySteps};</li>
 *   <li>{@link #exponential}: {@code rate^(t / decaySteps)};</li>
 * </ul>
 * and, with {@link #withWarmup}, times {@code t / warmupSteps} for the first {@code warmupSteps}
 * updates (the linear warm-up of Goyal et al., 2017). Immutable.
 */
public final class LearningRateSchedule implements Serializable {

  private static final long serialVersionUID = 1L;

  private final String kind;
  private final int[] boundaries;
  private final double[] factors;
  private final int decaySteps;
  private final double rate;
  private final int warmupSteps;

  private LearningRateSchedule(String kind, int[] boundaries, double[] factors, int decaySteps, double rate,
                               int warmupSteps) {
    this.kind = kind;
    this.boundaries = boundaries;
    this.factors = factors;
    this.decaySteps = decaySteps;
    this.rate = rate;
    this.warmupSteps = warmupSteps;
  }

  /** The base rate at every update. */
  public static LearningRateSchedule constant() {
    return new LearningRateSchedule("constant", new int[0], new double[0], 0, 0, 0);
  }

  /**
   * {@code factors[0]} up to update {@code boundaries[0]}, {@code factors[1]} up to
   * {@code boundaries[1]}, and so on; the last factor after the last boundary.
   *
   * @throws IllegalArgumentException unless the boundaries are increasing and at least 1, and
   *     there is one factor more than boundaries, each positive and finite
   */
  public static LearningRateSchedule piecewise(int[] boundaries, double[] factors) {
    if (factors.length != boundaries.length + 1) {
      throw new IllegalArgumentException("a piecewise schedule needs one factor more than boundaries, but has "
          + factors.length + " factors for " + boundaries.length + " boundaries");
    }
    for (int i = 0; i < boundaries.length; i++) {
      if (boundaries[i] < 1 || (i > 0 && boundaries[i] <= boundaries[i - 1])) {
        throw new IllegalArgumentException("piecewise boundaries must be increasing steps >= 1, but were "
            + Arrays.toString(boundaries));
      }
    }
    for (double f : factors) {
      if (!(f > 0) || Double.isInfinite(f)) {
        throw new IllegalArgumentException("piecewise factors must be positive and finite, but were "
            + Arrays.toString(factors));
      }
    }
    return new LearningRateSchedule("piecewise", boundaries.clone(), factors.clone(), 0, 0, 0);
  }

  /** Cosine decay from the base rate to 0 at update {@code decaySteps}, 0 after. */
  public static LearningRateSchedule cosine(int decaySteps) {
    if (decaySteps < 1) {
      throw new IllegalArgumentException("cosine decay needs decaySteps >= 1 but was " + decaySteps);
    }
    return new LearningRateSchedule("cosine", new int[0], new double[0], decaySteps, 0, 0);
  }

  /** {@code rate^(t / decaySteps)}: the rate multiplied by {@code rate} every {@code decaySteps} updates, smoothly. */
  public static LearningRateSchedule exponential(int decaySteps, double rate) {
    if (decaySteps < 1) {
      throw new IllegalArgumentException("exponential decay needs decaySteps >= 1 but was " + decaySteps);
    }
    if (!(rate > 0 && rate <= 1)) {
      throw new IllegalArgumentException("exponential decay needs a decay rate in (0, 1] but was " + rate);
    }
    return new LearningRateSchedule("exponential", new int[0], new double[0], decaySteps, rate, 0);
  }

  /** This schedule, times {@code t / steps} for the first {@code steps} updates. */
  public LearningRateSchedule withWarmup(int steps) {
    if (steps < 0) {
      throw new IllegalArgumentException("warmupSteps must be >= 0 but was " + steps);
    }
    return new LearningRateSchedule(kind, boundaries, factors, decaySteps, rate, steps);
  }

  /** The factor of the base rate at update {@code t >= 1}. */
  public double factor(long t) {
    double f = switch (kind) {
      case "piecewise" -> {
        int i = 0;
        while (i < boundaries.length && t > boundaries[i]) {
          i++;
        }
        yield factors[i];
      }
      case "cosine" -> 0.5 * (1 + Math.cos(Math.PI * Math.min(t, decaySteps) / decaySteps));
      case "exponential" -> Math.pow(rate, (double) t / decaySteps);
      default -> 1.0;
    };
    return t <= warmupSteps ? f * t / warmupSteps : f;
  }

  /** The kind: {@code constant}, {@code piecewise}, {@code cosine} or {@code exponential}. */
  public String kind() {
    return kind;
  }

  @Override
  public String toString() {
    String s = switch (kind) {
      case "piecewise" -> "piecewise(boundaries " + Arrays.toString(boundaries) + ", factors " + Arrays.toString(factors) + ")";
      case "cosine" -> "cosine(decaySteps " + decaySteps + ")";
      case "exponential" -> "exponential(decaySteps " + decaySteps + ", rate " + rate + ")";
      default -> "constant";
    };
    return warmupSteps > 0 ? s + " after " + warmupSteps + " warm-up steps" : s;
  }
}
