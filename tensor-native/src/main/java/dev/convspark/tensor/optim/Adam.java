package dev.convspark.tensor.optim;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Adam with TensorFlow's defaults and update form (beta1 0.9, beta2 0.999, epsilon 1e-8):
 * <pre>
 *   t  = t + 1
 *   lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
 *   m  = beta1 * m + (1 - beta1) * g
 *   v  = beta2 * v + (1 - beta2) * g^2
 *   p  = p - lr_t * m / (sqrt(v) + epsilon)
 * </pre>
 */
public final class Adam implements Optimizer {

  /** Decay of the first moment. */
  public static final float BETA1 = 0.9f;
  /** Decay of the second moment. */
  public static final float BETA2 = 0.999f;
  /** Added to the root of the second moment. */
  public static final float EPSILON = 1e-8f;

  private final float lr;
  private final int paramCount;
  /** The moments: of every parameter, or (see {@link #keepOnly}) of the kept ranges, back to back. */
  private float[] m;
  private float[] v;
  /** The kept ranges {@code [keptStarts[k], keptEnds[k])} and where each begins in the moments; null when whole. */
  private int[] keptStarts;
  private int[] keptEnds;
  private int[] keptOffsets;
  private long steps;
  private float stepSize;
  private float current;
  private LearningRateSchedule schedule = LearningRateSchedule.constant();
  private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;

  /** @param learningRate positive and finite; {@code paramCount} sizes the moment buffers */
  public Adam(float learningRate, int paramCount) {
    checkLearningRate(learningRate);
    this.lr = learningRate;
    this.current = learningRate;
    this.paramCount = paramCount;
    this.m = new float[paramCount];
    this.v = new float[paramCount];
  }

  static void checkLearningRate(float lr) {
    if (!(lr > 0f) || Float.isInfinite(lr)) {
      throw new IllegalArgumentException("learningRate must be positive and finite but was " + lr);
    }
  }

  @Override
  public String name() {
    return "adam";
  }

  @Override
  public float learningRate() {
    return lr;
  }

  @Override
  public void setSchedule(LearningRateSchedule schedule) {
    this.schedule = schedule;
  }

  @Override
  public float currentLearningRate() {
    return current;
  }

  @Override
  public void beginStep() {
    steps++;
    double rate = lr * schedule.factor(steps);
    current = (float) rate;
    stepSize = (float) (rate * Math.sqrt(1 - Math.pow(BETA2, steps)) / (1 - Math.pow(BETA1, steps)));
  }

  @Override
  public void update(float[] params, float[] grads, int from, int to) {
    float a = stepSize;
    float[] m = this.m;
    float[] v = this.v;
    int i = from;
    // Parameter i's moments are at i + d: d = 0 when whole, else where its kept range begins.
    int d = momentsAt(from, to) - from;
    // The same operations lane by lane as the scalar loop below, so results do not depend on
    // where a range starts.
    for (int bound = from + S.loopBound(to - from); i < bound; i += S.length()) {
      FloatVector g = FloatVector.fromArray(S, grads, i);
      FloatVector mi = FloatVector.fromArray(S, m, i + d).mul(BETA1).add(g.mul(1 - BETA1));
      FloatVector vi = FloatVector.fromArray(S, v, i + d).mul(BETA2).add(g.mul(g).mul(1 - BETA2));
      mi.intoArray(m, i + d);
      vi.intoArray(v, i + d);
      FloatVector p = FloatVector.fromArray(S, params, i);
      p.sub(mi.mul(a).div(vi.sqrt().add(EPSILON))).intoArray(params, i);
    }
    for (; i < to; i++) {
      float g = grads[i];
      int j = i + d;
      m[j] = BETA1 * m[j] + (1 - BETA1) * g;
      v[j] = BETA2 * v[j] + (1 - BETA2) * (g * g);
      params[i] -= a * m[j] / ((float) Math.sqrt(v[j]) + EPSILON);
    }
  }

  /** Where the moments of parameters {@code [from, to)} begin; they must lie in one kept range. */
  private int momentsAt(int from, int to) {
    if (keptStarts == null) {
      return from;
    }
    int k = java.util.Arrays.binarySearch(keptStarts, from);
    k = k >= 0 ? k : -k - 2;
    if (k < 0 || to > keptEnds[k]) {
      throw new IllegalArgumentException("adam keeps the moments of " + keptStarts.length + " ranges only, and ["
          + from + ", " + to + ") is not within one of them");
    }
    return keptOffsets[k] + from - keptStarts[k];
  }

  /**
   * Keeps the moments of the parameters in {@code [starts[k], ends[k])} only (ascending, disjoint),
   * with their values, and drops the others: for a worker that updates those ranges alone (the
   * update sharded between workers), whose moments then take that share of the memory.
   * {@link #update} then takes ranges within them only. {@link #wholeMoments} and
   * {@link #restoreWhole} make them whole again (for a checkpoint).
   */
  public void keepOnly(int[] starts, int[] ends) {
    if (starts.length != ends.length) {
      throw new IllegalArgumentException("keepOnly: " + starts.length + " starts but " + ends.length + " ends");
    }
    if (keptStarts != null && java.util.Arrays.equals(starts, keptStarts) && java.util.Arrays.equals(ends, keptEnds)) {
      return;
    }
    int[] offsets = new int[starts.length];
    int total = 0;
    for (int k = 0; k < starts.length; k++) {
      if (starts[k] < (k == 0 ? 0 : ends[k - 1]) || ends[k] <= starts[k] || ends[k] > paramCount) {
        throw new IllegalArgumentException("keepOnly: ranges must be ascending, disjoint, non-empty and within the "
            + paramCount + " parameters, but range " + k + " is [" + starts[k] + ", " + ends[k] + ")");
      }
      offsets[k] = total;
      total += ends[k] - starts[k];
    }
    float[] nm = new float[total];
    float[] nv = new float[total];
    for (int k = 0; k < starts.length; k++) {
      int at = momentsAt(starts[k], ends[k]);
      System.arraycopy(m, at, nm, offsets[k], ends[k] - starts[k]);
      System.arraycopy(v, at, nv, offsets[k], ends[k] - starts[k]);
    }
    m = nm;
    v = nv;
    keptStarts = starts.clone();
    keptEnds = ends.clone();
    keptOffsets = offsets;
  }

  /** The floats each moment holds now: every parameter's, or the kept ranges' (see {@link #keepOnly}). */
  public int momentLength() {
    return m.length;
  }

  /**
   * The moments {@code {m, v}} over every parameter, as new arrays: zero outside the kept ranges
   * when only some are kept.
   */
  public float[][] wholeMoments() {
    if (keptStarts == null) {
      return new float[][] {m.clone(), v.clone()};
    }
    float[][] w = {new float[paramCount], new float[paramCount]};
    for (int k = 0; k < keptStarts.length; k++) {
      System.arraycopy(m, keptOffsets[k], w[0], keptStarts[k], keptEnds[k] - keptStarts[k]);
      System.arraycopy(v, keptOffsets[k], w[1], keptStarts[k], keptEnds[k] - keptStarts[k]);
    }
    return w;
  }

  /** Keeps every parameter's moments again, taking {@code m} and {@code v} (of every parameter) as they are. */
  public void restoreWhole(float[] m, float[] v) {
    if (m.length != paramCount || v.length != paramCount) {
      throw new IllegalArgumentException("adam moments must have " + paramCount + " floats, not " + m.length
          + " and " + v.length);
    }
    this.m = m;
    this.v = v;
    keptStarts = null;
    keptEnds = null;
    keptOffsets = null;
  }

  private void requireWhole(String what) {
    if (keptStarts != null) {
      throw new IllegalStateException("adam keeps the moments of some parameters only (the update is sharded): "
          + what + " needs them whole; gather them first (wholeMoments, restoreWhole)");
    }
  }

  /** The step size of the step begun last: {@code lr_t * sqrt(1 - beta2^t) / (1 - beta1^t)}, {@code lr_t} the scheduled rate. */
  public float stepSize() {
    return stepSize;
  }

  /**
   * The live moment buffers {@code {m, v}}: a backend that keeps the moments elsewhere (a GPU)
   * copies them in here so that {@link #state()} is current.
   */
  public float[][] moments() {
    requireWhole("moments()");
    return new float[][] {m, v};
  }

  @Override
  public long steps() {
    return steps;
  }

  @Override
  public OptimizerState state() {
    requireWhole("state()");
    return new OptimizerState(name(), lr, steps, new float[][] {m.clone(), v.clone()});
  }

  void restore(OptimizerState s) {
    if (s.moments().length != 2 || s.moments()[0].length != paramCount || s.moments()[1].length != paramCount) {
      throw new IllegalArgumentException("adam state must hold 2 moment arrays of " + paramCount + " floats");
    }
    restoreWhole(s.moments()[0].clone(), s.moments()[1].clone());
    steps = s.steps();
    stepSize = 0f;
  }
}
