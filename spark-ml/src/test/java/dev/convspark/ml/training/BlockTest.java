package dev.convspark.ml.training;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.catalyst.util.GenericArrayData;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.Test;

/** Packing internal rows into chunked blocks and merging blocks, across chunk boundaries. */
class BlockTest {

  private static final int SIZE = 784;
  private static final StructType SCHEMA = new StructType()
      .add("x", DataTypes.createArrayType(DataTypes.FloatType), true).add("label", DataTypes.IntegerType, true);

  private static float value(int row, int j) {
    return row * 1000f + j;
  }

  private static List<InternalRow> rows(int from, int n) {
    List<InternalRow> rows = new ArrayList<>();
    for (int r = from; r < from + n; r++) {
      Object[] x = new Object[SIZE];
      for (int j = 0; j < SIZE; j++) {
        x[j] = value(r, j);
      }
      rows.add(new GenericInternalRow(new Object[] {new GenericArrayData(x), r % 10}));
    }
    return rows;
  }

  private static Block pack(int from, int n) {
    return Block.pack(rows(from, n).iterator(), FeatureReader.of(SCHEMA, "x", SIZE), LabelReader.of(SCHEMA, "label", 10),
        SIZE, null, null);
  }

  private static void assertSample(Block b, int i, int row) {
    float[] got = new float[SIZE + 2];
    b.copyFeatures(i, got, 1);
    float[] want = new float[SIZE + 2];
    for (int j = 0; j < SIZE; j++) {
      want[1 + j] = value(row, j);
    }
    assertArrayEquals(want, got, "sample " + i);
    assertEquals(row % 10, b.label(i), "label of sample " + i);
  }

  @Test
  void samplesReadBackAcrossChunksAndMergedBlocks() {
    int perChunk = Block.CHUNK_FLOATS / SIZE;
    assertTrue(perChunk < 400, "the rows below span several chunks");
    Block a = pack(0, 400);
    Block b = pack(400, 2 * perChunk);
    assertEquals(400, a.count);
    for (int i : new int[] {0, perChunk - 1, perChunk, 2 * perChunk + 1, 399}) {
      assertSample(a, i, i);
    }
    Block merged = Block.merge(List.of(a, pack(0, 0), b).iterator());
    assertEquals(400 + 2 * perChunk, merged.count);
    for (int i : new int[] {0, perChunk, 399, 400, 400 + perChunk - 1, 400 + perChunk, 399 + 2 * perChunk}) {
      assertSample(merged, i, i);
    }
    assertEquals(0, pack(0, 0).count);
  }

  /**
   * Weights (a double field after the label) go with their samples through packing (across
   * chunks), merging and sampling; a block tells its count and weight sum, and without weights its
   * count alone, as before.
   */
  @Test
  void weightsTravelWithTheirSamplesAndTheStatusCarriesTheirSum() {
    StructType schema = SCHEMA.add("w", DataTypes.DoubleType, true);
    WeightReader reader = WeightReader.of(schema, "w");
    List<Block> parts = new ArrayList<>();
    for (int[] range : new int[][] {{0, 200}, {200, 150}}) {
      List<InternalRow> rows = new ArrayList<>();
      for (InternalRow r : rows(range[0], range[1])) {
        int row = range[0] + rows.size();
        rows.add(new GenericInternalRow(new Object[] {r.getArray(0), r.getInt(1), row * 0.5}));
      }
      parts.add(Block.pack(rows.iterator(), FeatureReader.of(schema, "x", SIZE), LabelReader.of(schema, "label", 10),
          SIZE, null, reader));
    }
    Block merged = Block.merge(parts.iterator());
    assertTrue(merged.weighted());
    double sum = 0;
    for (int i = 0; i < 350; i++) {
      assertEquals(i * 0.5f, merged.weight(i));
      sum += i * 0.5;
    }
    assertEquals(sum, merged.weightSum);
    assertEquals(350, Block.statusCount(merged.status()));
    assertEquals(sum, Block.statusWeight(merged.status()));
    Block plain = pack(0, 5);
    assertEquals("5", plain.status());
    assertEquals(5.0, Block.statusWeight(plain.status()));
    // A drawn sample's weight, scaled, is its own.
    float[] x = new float[7 * SIZE];
    int[] y = new int[7];
    float[] w = new float[7];
    Sampling.sample(merged, 7, 0, 9L, x, y, w, 2.0, 0, null);
    for (int i = 0; i < 7; i++) {
      int row = (int) (x[i * SIZE] / 1000f);
      assertEquals(row * 0.5f * 2, w[i], "sample " + i + " (row " + row + ")");
    }
  }

  @Test
  void aStepsSamplesAreTheFirstPlacesOfASeededShuffleWithoutRepeats() {
    Block b = pack(0, 500);
    for (int share : new int[] {1, 50, 500}) {
      float[] x = new float[(share + 3) * SIZE];
      int[] y = new int[share + 3];
      Sampling.sample(b, share, 2, 77L, x, y, null, 1, 3, null);
      // The same shuffle on a whole permutation array.
      java.util.SplittableRandom rnd = new java.util.SplittableRandom(77L * 31 + 2);
      int[] order = new int[500];
      for (int i = 0; i < order.length; i++) {
        order[i] = i;
      }
      java.util.Set<Integer> seen = new java.util.HashSet<>();
      for (int i = 0; i < share; i++) {
        int j = i + rnd.nextInt(order.length - i);
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
        assertEquals(value(order[i], 5), x[(3 + i) * SIZE + 5], "sample " + i + " of " + share);
        assertEquals(order[i] % 10, y[3 + i]);
        assertTrue(seen.add(order[i]), "no row twice in a step");
      }
    }
  }

  @Test
  void sharesSplitTheGlobalBatchInProportion() {
    assertArrayEquals(new int[] {17, 17, 16}, Sampling.shares(List.of(100, 100, 100), 300, 50));
    assertArrayEquals(new int[] {5, 0, 45}, Sampling.shares(List.of(10, 0, 90), 100, 50));
    assertArrayEquals(new int[] {3, 2}, Sampling.shares(List.of(3, 2), 5, 50));
  }
}
