package dev.convspark.ml;

import java.io.Serializable;
import java.util.Iterator;
import org.apache.spark.sql.catalyst.InternalRow;

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
   * A partition's block: the rows of (features, label) packed, or, when the partition holds
   * blocks packed already (see {@link #merge}), those blocks as one.
   */
  @SuppressWarnings("unchecked")
  static Block of(Iterator<?> items, FeatureReader features, LabelReader labels, int size) {
    if (!items.hasNext()) {
      return new Block(new float[0], new int[0], 0);
    }
    Object first = items.next();
    Iterator<Object> all = new Iterator<>() {
      private Object head = first;

      @Override
      public boolean hasNext() {
        return head != null || items.hasNext();
      }

      @Override
      public Object next() {
        if (head != null) {
          Object h = head;
          head = null;
          return h;
        }
        return items.next();
      }
    };
    if (first instanceof Block) {
      return merge((Iterator<Block>) (Iterator<?>) all);
    }
    return pack((Iterator<InternalRow>) (Iterator<?>) all, features, labels, size);
  }

  /** The blocks one after another, as one block. */
  static Block merge(Iterator<Block> blocks) {
    java.util.List<Block> list = new java.util.ArrayList<>();
    long n = 0;
    long floats = 0;
    while (blocks.hasNext()) {
      Block b = blocks.next();
      list.add(b);
      n += b.count;
      floats += b.features.length;
    }
    if (floats > Integer.MAX_VALUE - 8) {
      throw new IllegalArgumentException("a worker's share of the data (" + n + " rows, " + floats
          + " values) is more than one Java array holds; raise numWorkers");
    }
    float[] x = new float[(int) floats];
    int[] y = new int[(int) n];
    int xo = 0;
    int yo = 0;
    for (Block b : list) {
      System.arraycopy(b.features, 0, x, xo, b.features.length);
      System.arraycopy(b.labels, 0, y, yo, b.count);
      xo += b.features.length;
      yo += b.count;
    }
    return new Block(x, y, (int) n);
  }

  /**
   * Packs Spark's internal rows of (features, label), read in place (no row objects, no vectors).
   *
   * @throws IllegalArgumentException naming the column and the value for a bad feature or label
   */
  static Block pack(Iterator<InternalRow> rows, FeatureReader features, LabelReader labels, int size) {
    float[] x = new float[1024 * size];
    int[] y = new int[1024];
    int n = 0;
    while (rows.hasNext()) {
      InternalRow r = rows.next();
      if (n == y.length) {
        y = java.util.Arrays.copyOf(y, n * 2);
        x = java.util.Arrays.copyOf(x, n * 2 * size);
      }
      features.read(r, 0, x, n * size);
      y[n] = labels.read(r, 1);
      n++;
    }
    return new Block(java.util.Arrays.copyOf(x, n * size), java.util.Arrays.copyOf(y, n), n);
  }
}
