package dev.convspark.datasets.spark;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.datasets.idx.IdxHeader;
import dev.convspark.datasets.idx.IdxType;
import dev.convspark.datasets.idx.IdxWriter;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.ArrayType;
import org.apache.spark.sql.types.DataTypes;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The idx source on small files it writes itself: other types and shapes, options, and bad input. */
class IdxDataSourceInputTest {

  private static SparkSession spark;

  @TempDir
  Path dir;

  @BeforeAll
  static void start() {
    spark = TestSpark.get();
  }

  private Path write(String name, IdxType type, int[] dims, boolean gz) throws IOException {
    IdxHeader h = new IdxHeader(type, dims);
    ByteBuffer b = ByteBuffer.allocate((int) h.dataBytes());
    long n = h.dataBytes() / type.bytes();
    for (int i = 0; i < n; i++) {
      switch (type) {
        case UNSIGNED_BYTE, BYTE -> b.put((byte) (i * 7));
        case SHORT -> b.putShort((short) (i - 5));
        case INT -> b.putInt(i * 1000 - 3);
        case FLOAT -> b.putFloat(i * 0.5f);
        case DOUBLE -> b.putDouble(-i * 0.25);
      }
    }
    Path p = dir.resolve(name);
    IdxWriter.write(p, h, b.array(), gz);
    return p;
  }

  private Dataset<Row> read(Path p, String... options) {
    var r = spark.read().format("idx");
    for (int i = 0; i < options.length; i += 2) {
      r = r.option(options[i], options[i + 1]);
    }
    return r.load(p.toString());
  }

  private static String failure(Runnable action) {
    Exception e = assertThrows(Exception.class, action::run);
    StringBuilder all = new StringBuilder();
    for (Throwable t = e; t != null; t = t.getCause()) {
      all.append(t.getMessage()).append(" | ");
    }
    return all.toString();
  }

  @Test
  void floatRecordsComeOutAsFloatArraysWithTheirShapeInMetadata() throws IOException {
    Path p = write("weights-idx3-float", IdxType.FLOAT, new int[] {4, 2, 3}, false);
    Dataset<Row> df = read(p);
    assertEquals(List.of("index", "data"), List.of(df.columns()));
    assertEquals(DataTypes.createArrayType(DataTypes.FloatType, false), df.schema().apply("data").dataType());
    assertArrayEquals(new long[] {2, 3}, df.schema().apply("data").metadata().getLongArray("idx.shape"));
    List<Row> rows = df.orderBy("index").collectAsList();
    assertEquals(4, rows.size());
    assertEquals(List.of(3.0f, 3.5f, 4.0f, 4.5f, 5.0f, 5.5f), rows.get(1).getList(1));
  }

  @Test
  void everyTypeReadsTheSameOnTheColumnarAndRowPaths() throws IOException {
    for (IdxType t : IdxType.values()) {
      Path p = write("t-" + t, t, new int[] {9, 5}, t == IdxType.SHORT);
      Dataset<Row> columnar = read(p, "imageFormat", "raw");
      Dataset<Row> rows = read(p, "imageFormat", "raw", "columnarReads", "false");
      assertTrue(columnar.schema().apply("data").dataType() instanceof ArrayType);
      assertEquals(rows.orderBy("index").collectAsList(), columnar.orderBy("index").collectAsList(), t.name());
    }
    Path scalars = write("s", IdxType.INT, new int[] {6}, false);
    List<Row> s = read(scalars).orderBy("index").collectAsList();
    assertEquals(List.of("index", "value"), List.of(read(scalars).columns()));
    assertEquals(997, s.get(1).getInt(1));
    assertEquals(s, read(scalars, "columnarReads", "false").orderBy("index").collectAsList());
  }

  @Test
  void vectorAndArrayFormatsScaleUnsignedBytes() throws IOException {
    Path images = write("x-images-idx3-ubyte", IdxType.UNSIGNED_BYTE, new int[] {3, 2, 2}, false);
    write("x-labels-idx1-ubyte", IdxType.UNSIGNED_BYTE, new int[] {3}, false);
    Row v = read(images, "imageFormat", "vector").orderBy("index").first();
    assertEquals(0, v.getInt(1));
    org.apache.spark.ml.linalg.Vector features = (org.apache.spark.ml.linalg.Vector) v.get(2);
    assertEquals(7 / 255.0, features.apply(1), 1e-6);
    Row a = read(images, "imageFormat", "array", "scale", "false").orderBy("index").first();
    assertEquals(List.of(0f, 7f, 14f, 21f), a.getList(2));
  }

  @Test
  void gzipIsDetectedFromTheContentNotTheName() throws IOException {
    Path p = write("no-suffix", IdxType.DOUBLE, new int[] {5, 2}, true);
    assertEquals(5, read(p).count());
    assertEquals(1, read(p).rdd().getNumPartitions());
  }

  @Test
  void explicitLabelsPathPairsAnyNames() throws IOException {
    Path data = write("pixels.idx", IdxType.UNSIGNED_BYTE, new int[] {4, 3, 3}, false);
    Path labels = write("classes.idx", IdxType.UNSIGNED_BYTE, new int[] {4}, false);
    Dataset<Row> df = read(data, "labelsPath", labels.toString());
    assertEquals(List.of("index", "label", "image"), List.of(df.columns()));
    assertEquals(List.of(0, 7, 14, 21), df.orderBy("index").select("label").as(org.apache.spark.sql.Encoders.INT())
        .collectAsList());
  }

  @Test
  void wrongMagicFailsAtLoadNamingTheFile() throws IOException {
    Path p = write("bad-magic", IdxType.UNSIGNED_BYTE, new int[] {2, 2}, false);
    byte[] b = Files.readAllBytes(p);
    b[0] = 7;
    Files.write(p, b);
    String m = failure(() -> read(p));
    assertTrue(m.contains(p.toString()) && m.contains("magic number"), m);
  }

  @Test
  void unknownTypeCodeFailsAtLoad() throws IOException {
    Path p = write("bad-type", IdxType.UNSIGNED_BYTE, new int[] {2, 2}, false);
    byte[] b = Files.readAllBytes(p);
    b[2] = 0x0F;
    Files.write(p, b);
    String m = failure(() -> read(p));
    assertTrue(m.contains(p.toString()) && m.contains("unknown IDX type code 0x0F"), m);
  }

  @Test
  void shortAndLongFilesFailAtLoad() throws IOException {
    Path p = write("short", IdxType.FLOAT, new int[] {3, 4}, false);
    byte[] b = Files.readAllBytes(p);
    Files.write(p, Arrays.copyOf(b, b.length - 4));
    String m = failure(() -> read(p));
    assertTrue(m.contains(p.toString()) && m.contains("truncated"), m);
    Files.write(p, Arrays.copyOf(b, b.length + 4));
    m = failure(() -> read(p));
    assertTrue(m.contains(p.toString()) && m.contains("longer than its header"), m);
  }

  @Test
  void imagesAndLabelsOfDifferentCountsFailAtLoad() throws IOException {
    Path images = write("y-images-idx3-ubyte", IdxType.UNSIGNED_BYTE, new int[] {5, 2, 2}, false);
    Path labels = write("y-labels-idx1-ubyte", IdxType.UNSIGNED_BYTE, new int[] {4}, false);
    String m = failure(() -> read(images));
    assertTrue(m.contains(labels.toString()) && m.contains("has 4 labels") && m.contains("5 records"), m);
  }

  @Test
  void pathMatchingNothingFails() {
    String m = failure(() -> spark.read().format("idx").load(dir.resolve("nothing-*").toString()));
    assertTrue(m.contains("matches no file"), m);
  }

  @Test
  void badOptionValuesFailNamingTheOption() throws IOException {
    Path p = write("opt", IdxType.UNSIGNED_BYTE, new int[] {2, 2, 2}, false);
    String m = failure(() -> read(p, "imageFormat", "jpeg"));
    assertTrue(m.contains("option imageFormat") && m.contains("'jpeg'"), m);
    m = failure(() -> read(p, "recordsPerPartition", "0"));
    assertTrue(m.contains("option recordsPerPartition must be a positive integer"), m);
    m = failure(() -> read(p, "scale", "maybe"));
    assertTrue(m.contains("option scale must be true or false"), m);
    Path floats = write("f", IdxType.FLOAT, new int[] {2, 2, 2}, false);
    m = failure(() -> read(floats, "imageFormat", "image"));
    assertTrue(m.contains("imageFormat=image needs unsigned-byte records"), m);
  }
}
