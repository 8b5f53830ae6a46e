package dev.convspark.tensor.kernels;

/** Matrix transposition in cache-sized blocks. */
public final class Transpose {

  private static final int BLOCK = 32;
  private static final int NARROW = 8;
  private static final int RUN = 256;

  private Transpose() {
  }

  /** Writes the transpose of row-major {@code src} (rows x cols) into {@code dst} at {@code off} (cols x rows). */
  public static void into(float[] src, int rows, int cols, float[] dst, int off) {
    into(src, 0, rows, cols, dst, off);
  }

  /** As above, {@code src} starting at {@code srcOff}. */
  public static void into(float[] src, int srcOff, int rows, int cols, float[] dst, int off) {
    rows(src, srcOff, rows, cols, 0, rows, dst, off);
  }

  /**
   * Rows {@code [i0, i1)} of {@code src} (rows x cols, from {@code srcOff}) into their places in
   * its transpose at {@code dst[off ..]} (cols x rows): the columns {@code [i0, i1)} of each of its
   * rows. Disjoint ranges write disjoint parts of {@code dst}, so threads may take one each.
   */
  public static void rows(float[] src, int srcOff, int rows, int cols, int i0, int i1, float[] dst, int off) {
    if (rows > cols) {
      // A tall source: its transpose's rows are long and a multiple of 4 KB apart when rows is a
      // multiple of 1024, and 32 of them written at once all fall into the same few cache sets
      // (measured: 1024 x 50 took ten times as long). So 8 rows of the transpose are written
      // at a time, each a long run.
      for (int j0 = 0; j0 < cols; j0 += NARROW) {
        int j1 = Math.min(cols, j0 + NARROW);
        for (int r0 = i0; r0 < i1; r0 += RUN) {
          int r1 = Math.min(i1, r0 + RUN);
          for (int j = j0; j < j1; j++) {
            for (int i = r0; i < r1; i++) {
              dst[off + j * rows + i] = src[srcOff + i * cols + j];
            }
          }
        }
      }
      return;
    }
    for (int r0 = i0; r0 < i1; r0 += BLOCK) {
      int r1 = Math.min(i1, r0 + BLOCK);
      for (int j0 = 0; j0 < cols; j0 += BLOCK) {
        int j1 = Math.min(cols, j0 + BLOCK);
        for (int i = r0; i < r1; i++) {
          for (int j = j0; j < j1; j++) {
            dst[off + j * rows + i] = src[srcOff + i * cols + j];
          }
        }
      }
    }
  }
}
