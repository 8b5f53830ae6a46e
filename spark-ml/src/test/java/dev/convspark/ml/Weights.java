package dev.convspark.ml;

/** Comparing trained weights in tests. */
final class Weights {

  private Weights() {
  }

  /** The largest absolute difference between {@code a} and {@code b}, element by element. */
  static double maxDiff(float[] a, float[] b) {
    double max = 0;
    for (int i = 0; i < a.length; i++) {
      max = Math.max(max, Math.abs(a[i] - b[i]));
    }
    return max;
  }
}
