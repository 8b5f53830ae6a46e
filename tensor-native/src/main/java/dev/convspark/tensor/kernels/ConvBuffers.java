package dev.convspark.tensor.kernels;

/**
 * The work arrays of one convolution layer, kept from step to step and grown when a larger batch
 * comes: the unfolded patches and their gradient for the whole batch (the plain route), or one set
 * per thread (the fused route, see {@link FastKernels#convForward}; the implicit route keeps its
 * padded images and product outputs in the same per-thread arrays). Not thread-safe: one per layer.
 */
public final class ConvBuffers {

  private float[] col = new float[0];
  private float[] dcol = new float[0];
  private float[] dwT = new float[0];
  private float[] panels = new float[0];
  private float[][] threadCol = new float[0][];
  private float[][] threadDcol = new float[0][];
  private float[][] partial = new float[0][];

  private static float[] grow(float[] a, int n) {
    return a.length >= n ? a : new float[n];
  }

  float[] col(int n) {
    return col = grow(col, n);
  }

  float[] dcol(int n) {
    return dcol = grow(dcol, n);
  }

  float[] dwT(int n) {
    return dwT = grow(dwT, n);
  }

  /** The layer's weights (or their transpose) as the multiply's register-tile panels. */
  float[] panels(int n) {
    return panels = grow(panels, n);
  }

  /** Makes room for {@code threads} tasks' buffers: called before the tasks start. */
  void reserve(int threads) {
    if (threadCol.length < threads) {
      threadCol = java.util.Arrays.copyOf(threadCol, threads);
      threadDcol = java.util.Arrays.copyOf(threadDcol, threads);
      partial = java.util.Arrays.copyOf(partial, threads);
    }
  }

  /** Task {@code t}'s patch buffer (after {@link #reserve}). */
  float[] threadCol(int t, int n) {
    return threadCol[t] = grow(threadCol[t] == null ? new float[0] : threadCol[t], n);
  }

  /** Task {@code t}'s patch-gradient buffer. */
  float[] threadDcol(int t, int n) {
    return threadDcol[t] = grow(threadDcol[t] == null ? new float[0] : threadDcol[t], n);
  }

  /** Task {@code t}'s private weight-gradient sum. */
  float[] partial(int t, int n) {
    return partial[t] = grow(partial[t] == null ? new float[0] : partial[t], n);
  }
}
