package dev.convspark.ml.training;

import java.io.Serializable;
import java.util.Iterator;
import org.apache.spark.sql.catalyst.InternalRow;

/**
 * All the samples of one partition, packed for the engine: features one after another, in chunks
 * of at most {@link #CHUNK_FLOATS} floats, and their labels. Built once and cached, so training
 * steps never touch rows again. Chunks, not one array: the JVM allocates arrays of a few MB and
 * more as huge objects, each of which starts a collection, and growing one array by doubling
 * copies every value about twice; a 60,000-image partition took up to 0.4 s that way.
 */
final class Block implements Serializable {
  private static final long serialVersionUID = 4L;

  /** Floats per chunk (512 KB). */
  static final int CHUNK_FLOATS = 1 << 17;

  /** Floats per sample. */
  final int size;
  final int count;
  private final int rowsPerChunk;
  private final float[][] chunks;
  private final int[] labels;
  /** The samples' weights ({@code weightCol}), or null without: every weight 1. */
  private final float[] weights;
  /** The sum of the samples' weights (their count without weights). */
  final double weightSum;
  /** The partition's rows held out for validation, packed likewise; null when nothing is validated. */
  final Block held;

  private Block(int size, int count, float[][] chunks, int[] labels, float[] weights, Block held) {
    this.held = held;
    this.weights = weights;
    double sum = count;
    if (weights != null) {
      sum = 0;
      for (int i = 0; i < count; i++) {
        sum += weights[i];
      }
    }
    this.weightSum = sum;
    this.size = size;
    this.count = count;
    this.rowsPerChunk = rowsPerChunk(size);
    this.chunks = chunks;
    this.labels = labels;
  }

  private static int rowsPerChunk(int size) {
    return Math.max(1, CHUNK_FLOATS / size);
  }

  /** Copies sample {@code i}'s features into {@code dst} at {@code at}. */
  void copyFeatures(int i, float[] dst, int at) {
    System.arraycopy(chunks[i / rowsPerChunk], (i % rowsPerChunk) * size, dst, at, size);
  }

  /** Sample {@code i}'s class index. */
  int label(int i) {
    return labels[i];
  }

  /** Whether the samples carry weights ({@code weightCol}). */
  boolean weighted() {
    return weights != null;
  }

  /** Sample {@code i}'s weight: 1 without weights. */
  float weight(int i) {
    return weights == null ? 1f : weights[i];
  }

  /**
   * What a worker tells the others of its block: the sample count, and with weights the sum of
   * the weights after a slash (exact: the shortest decimal of the double).
   */
  String status() {
    return weights == null ? Integer.toString(count) : count + "/" + weightSum;
  }

  /** The sample count in a {@link #status}. */
  static int statusCount(String status) {
    int slash = status.indexOf('/');
    return Integer.parseInt(slash < 0 ? status : status.substring(0, slash));
  }

  /** The weight sum in a {@link #status}: the count without weights. */
  static double statusWeight(String status) {
    int slash = status.indexOf('/');
    return slash < 0 ? Integer.parseInt(status) : Double.parseDouble(status.substring(slash + 1));
  }

  /**
   * A partition's block: the rows of (features, label) packed, or, when the partition holds
   * blocks packed already (see {@link #merge}), those blocks as one. With {@code indicator}, the
   * rows hold a third field, the validation indicator, and those marked true go to {@link #held};
   * with {@code weights}, a field after those, the weight (a double).
   */
  @SuppressWarnings("unchecked")
  static Block of(Iterator<?> items, FeatureReader features, LabelReader labels, int size, IndicatorReader indicator,
                  WeightReader weights) {
    if (!items.hasNext()) {
      boolean w = weights != null;
      return new Builder(size, w).build(indicator == null ? null : new Builder(size, w).build(null));
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
    return pack((Iterator<InternalRow>) (Iterator<?>) all, features, labels, size, indicator, weights);
  }

  /** The blocks one after another, as one block. */
  static Block merge(Iterator<Block> blocks) {
    Builder b = null;
    Builder held = null;
    while (blocks.hasNext()) {
      Block next = blocks.next();
      b = b == null ? new Builder(next.size, next.weighted()) : b;
      b.addAll(next);
      if (next.held != null) {
        held = held == null ? new Builder(next.size, next.weighted()) : held;
        held.addAll(next.held);
      }
    }
    if (b == null) {
      throw new IllegalStateException("no blocks to merge");
    }
    return b.build(held == null ? null : held.build(null));
  }

  /**
   * Packs Spark's internal rows of (features, label), read in place (no row objects, no vectors).
   *
   * @throws IllegalArgumentException naming the column and the value for a bad feature or label
   */
  static Block pack(Iterator<InternalRow> rows, FeatureReader features, LabelReader labels, int size,
                    IndicatorReader indicator, WeightReader weights) {
    boolean weighted = weights != null;
    Builder b = new Builder(size, weighted);
    Builder held = indicator == null ? null : new Builder(size, weighted);
    int weightAt = indicator == null ? 2 : 3;
    while (rows.hasNext()) {
      InternalRow r = rows.next();
      Builder to = indicator != null && indicator.read(r, 2) ? held : b;
      int at = to.reserve();
      features.read(r, 0, to.chunk, at);
      to.labels[to.count - 1] = labels.read(r, 1);
      if (weighted) {
        to.weights[to.count - 1] = weights.read(r, weightAt);
      }
    }
    return b.build(held == null ? null : held.build(null));
  }

  /** Appends samples chunk by chunk. */
  private static final class Builder {
    private final int size;
    private final int rowsPerChunk;
    private final java.util.List<float[]> chunks = new java.util.ArrayList<>();
    private float[] chunk;
    private int[] labels = new int[1024];
    private float[] weights;
    private int count;

    Builder(int size, boolean weighted) {
      this.size = size;
      this.rowsPerChunk = rowsPerChunk(size);
      this.weights = weighted ? new float[labels.length] : null;
    }

    /** Makes room for one more sample; returns where its features go in {@link #chunk}. */
    int reserve() {
      int inChunk = count % rowsPerChunk;
      if (inChunk == 0) {
        chunk = new float[rowsPerChunk * size];
        chunks.add(chunk);
      }
      if (count == labels.length) {
        labels = java.util.Arrays.copyOf(labels, count * 2);
        weights = weights == null ? null : java.util.Arrays.copyOf(weights, count * 2);
      }
      count++;
      return inChunk * size;
    }

    void addAll(Block from) {
      for (int i = 0; i < from.count; i++) {
        int at = reserve();
        from.copyFeatures(i, chunk, at);
        labels[count - 1] = from.labels[i];
        if (weights != null) {
          weights[count - 1] = from.weight(i);
        }
      }
    }

    Block build(Block held) {
      if (chunk != null && count % rowsPerChunk != 0) {
        // The last chunk holds only what it was given.
        chunks.set(chunks.size() - 1, java.util.Arrays.copyOf(chunk, (count % rowsPerChunk) * size));
      }
      return new Block(size, count, chunks.toArray(new float[0][]), java.util.Arrays.copyOf(labels, count),
          weights == null ? null : java.util.Arrays.copyOf(weights, count), held);
    }
  }
}
