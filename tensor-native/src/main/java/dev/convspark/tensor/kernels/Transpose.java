package dev.convspark.tensor.kernels;

/** Matrix transposition in cache-sized blocks. */
public final class Transpose {

  private static final int BLOCK = 32;

  private Transpose() {
  }

  /** Writes the transpose of row-major {@code src} (rows x cols) into {@code dst} at {@code off} (cols x rows). */
  public static void into(float[] src, int rows, int cols, float[] dst, int off) {
    into(src, 0, rows, cols, dst, off);
  }

  /** As above, {@code src} starting at {@code srcOff}. */
  public static void into(float[] src, int srcOff, int rows, int cols, float[] dst, int off) {
    for (int i0 = 0; i0 < rows; i0 += BLOCK) {
      int i1 = Math.min(rows, i0 + BLOCK);
      for (int j0 = 0; j0 < cols; j0 += BLOCK) {
        int j1 = Math.min(cols, j0 + BLOCK);
        for (int i = i0; i < i1; i++) {
          for (int j = j0; j < j1; j++) {
            dst[off + j * rows + i] = src[srcOff + i * cols + j];
          }
        }
      }
    }
  }
}
