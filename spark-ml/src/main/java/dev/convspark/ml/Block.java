package dev.convspark.ml;

import java.io.Serializable;
import java.util.Iterator;
import org.apache.spark.sql.Row;

/**
 * All the samples of one partition, packed for the engine: features one after another and their
 * labels. Built once and cached, so training steps never touch rows again.
 */
final class Block implements Serializable {
  private static final long serialVersionUID = 1L;

  final float[] features;
  final int[] labels;
  final int count;

  private Block(float[] features, int[] labels, int count) {
    this.features = features;
    this.labels = labels;
    this.count = count;
  }

  /**
   * Packs rows of (features, label).
   *
   * @throws IllegalArgumentException naming the column and the value for a label that is null, not
   *                                  an integer, or outside {@code [0, classes)}
   */
  static Block pack(Iterator<Row> rows, FeatureReader reader, String labelCol, int size, int classes) {
    float[] x = new float[1024 * size];
    int[] y = new int[1024];
    int n = 0;
    while (rows.hasNext()) {
      Row r = rows.next();
      if (n == y.length) {
        y = java.util.Arrays.copyOf(y, n * 2);
        x = java.util.Arrays.copyOf(x, n * 2 * size);
      }
      reader.read(r, 0, x, n * size);
      if (r.isNullAt(1)) {
        throw new IllegalArgumentException("label column '" + labelCol + "' holds a null; labels must be 0-based class indices in [0, "
            + classes + ")");
      }
      double label = ((Number) r.get(1)).doubleValue();
      if (label != Math.rint(label) || label < 0 || label >= classes) {
        throw new IllegalArgumentException("label column '" + labelCol + "' holds " + label
            + "; labels must be 0-based class indices in [0, " + classes + ")");
      }
      y[n] = (int) label;
      n++;
    }
    return new Block(java.util.Arrays.copyOf(x, n * size), java.util.Arrays.copyOf(y, n), n);
  }
}
