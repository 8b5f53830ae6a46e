package dev.convspark.datasets.spark;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.datasets.mnist.MnistArrays;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.zip.GZIPOutputStream;
import org.apache.spark.ml.classification.LogisticRegression;
import org.apache.spark.ml.classification.LogisticRegressionModel;
import org.apache.spark.ml.evaluation.MulticlassClassificationEvaluator;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The idx source on the real MNIST files. */
class IdxDataSourceMnistTest {

  private static SparkSession spark;
  private static Path mnist;

  @TempDir
  static Path gzDir;

  @BeforeAll
  static void start() throws IOException {
    spark = TestSpark.get();
    mnist = MnistArrays.defaultDir().toAbsolutePath();
    for (String name : new String[] {"train-images-idx3-ubyte", "train-labels-idx1-ubyte"}) {
      try (InputStream in = Files.newInputStream(mnist.resolve(name));
           OutputStream out = new GZIPOutputStream(Files.newOutputStream(gzDir.resolve(name + ".gz")), 1 << 16)) {
        in.transferTo(out);
      }
    }
  }

  private static String train() {
    return mnist.resolve("train-images-idx3-ubyte").toString();
  }

  @Test
  void trainingSetHas60000RowsWithTheKnownLabelCounts() {
    Dataset<Row> df = spark.read().format("idx").load(train());
    assertEquals(List.of("index", "label", "image"), List.of(df.columns()));
    assertEquals(60_000, df.count());
    List<Row> counts = df.groupBy("label").count().orderBy("label").collectAsList();
    long[] expected = {5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949};
    for (int d = 0; d < 10; d++) {
      assertEquals(d, counts.get(d).getInt(0));
      assertEquals(expected[d], counts.get(d).getLong(1), "count of digit " + d);
    }
    List<Row> first = df.orderBy("index").select("label").limit(5).collectAsList();
    int[] labels = first.stream().mapToInt(r -> r.getInt(0)).toArray();
    assertArrayEquals(new int[] {5, 0, 4, 1, 9}, labels);
  }

  @Test
  void imageColumnHasSparksImageSchemaAndPixels() {
    Dataset<Row> df = spark.read().format("idx").load(train());
    assertEquals(IdxLayout.imageType(), df.schema().apply("image").dataType());
    assertEquals(org.apache.spark.ml.image.ImageSchema.columnSchema(), df.schema().apply("image").dataType(),
        "the image column is Spark's image struct");
    Row r = df.where("index = 0").select("image.height", "image.width", "image.nChannels", "image.mode", "image.data")
        .first();
    assertEquals(28, r.getInt(0));
    assertEquals(28, r.getInt(1));
    assertEquals(1, r.getInt(2));
    assertEquals(0, r.getInt(3));
    byte[] data = (byte[]) r.get(4);
    assertEquals(784, data.length);
    // Row 14 of the first image (a 5) crosses the stroke.
    int sum = 0;
    for (byte b : data) {
      sum += b & 0xff;
    }
    assertTrue(sum > 20_000, "the first image has ink: " + sum);
  }

  @Test
  void testSetAndDirectoryRead() {
    assertEquals(10_000, spark.read().format("idx").load(mnist.resolve("t10k-images-idx3-ubyte").toString()).count());
    Dataset<Row> both = spark.read().format("idx").load(mnist.toString());
    assertEquals(70_000, both.count(), "a directory reads every images file, each with its labels");
  }

  /** Every (index, label, SHA-256 of the pixels) of a read, sorted by index. */
  private static List<Row> fingerprint(Dataset<Row> df) {
    return df.select(functions.col("index"), functions.col("label"), functions.sha2(functions.col("image.data"), 256))
        .orderBy("index").collectAsList();
  }

  @Test
  void contentsAreIdenticalWhateverThePartitioningAndWithGzipInput() {
    // By default a small input spreads over the cores, as Spark's file sources do: 2 on local[2].
    Dataset<Row> one = spark.read().format("idx").load(train());
    Dataset<Row> three = spark.read().format("idx").option("recordsPerPartition", 20_000).load(train());
    Dataset<Row> eight = spark.read().format("idx").option("recordsPerPartition", 7_500).load(train());
    Dataset<Row> gz = spark.read().format("idx").load(gzDir.resolve("train-images-idx3-ubyte.gz").toString());
    assertEquals(spark.sparkContext().defaultParallelism(), one.rdd().getNumPartitions());
    assertEquals(3, three.rdd().getNumPartitions());
    assertEquals(8, eight.rdd().getNumPartitions());
    assertEquals(1, gz.rdd().getNumPartitions(), "a gzip file is one split");
    // Splits of equal size, so that tasks are equal: 7,500 x 8, and the 10,000 test images in 2 x 5,000.
    assertEquals(List.of(7_500L), eight.toJavaRDD().mapPartitions(it -> {
      long n = 0;
      for (; it.hasNext(); it.next()) {
        n++;
      }
      return List.of(n).iterator();
    }).distinct().collect());
    Dataset<Row> test = spark.read().format("idx").load(train().replace("train-images-idx3", "t10k-images-idx3"));
    assertEquals(List.of(5_000L, 5_000L), test.toJavaRDD().mapPartitions(it -> {
      long n = 0;
      for (; it.hasNext(); it.next()) {
        n++;
      }
      return List.of(n).iterator();
    }).collect(), "the test set on local[2]");
    List<Row> expected = fingerprint(one);
    assertEquals(60_000, expected.size());
    assertEquals(expected, fingerprint(three));
    assertEquals(expected, fingerprint(eight));
    assertEquals(expected, fingerprint(gz));
  }

  @Test
  void columnarAndRowPathsAgreeByteForByte() {
    Dataset<Row> columnar = spark.read().format("idx").option("recordsPerPartition", 7_000).load(train());
    Dataset<Row> rows = spark.read().format("idx").option("recordsPerPartition", 7_000)
        .option("columnarReads", "false").load(train());
    assertTrue(columnar.queryExecution().executedPlan().toString().contains("ColumnarToRow"),
        "the default read is columnar: " + columnar.queryExecution().executedPlan());
    assertTrue(!rows.queryExecution().executedPlan().toString().contains("ColumnarToRow"));
    List<Row> a = columnar.orderBy("index").collectAsList();
    List<Row> b = rows.orderBy("index").collectAsList();
    assertEquals(60_000, a.size());
    for (int i = 0; i < a.size(); i++) {
      assertEquals(a.get(i).getLong(0), b.get(i).getLong(0));
      assertEquals(a.get(i).getInt(1), b.get(i).getInt(1));
      Row ia = a.get(i).getStruct(2);
      Row ib = b.get(i).getStruct(2);
      assertEquals(ia.getString(0), ib.getString(0));
      assertArrayEquals((byte[]) ia.get(5), (byte[]) ib.get(5), "image bytes of record " + i);
    }
    List<Row> fa = spark.read().format("idx").option("imageFormat", "array").load(train()).orderBy("index").limit(300)
        .collectAsList();
    List<Row> fb = spark.read().format("idx").option("imageFormat", "array").option("columnarReads", "false")
        .load(train()).orderBy("index").limit(300).collectAsList();
    assertEquals(fa, fb, "array<float> columns agree on both paths");
  }

  @Test
  void temporaryViewUsingIdxWorksWithoutExtensions() {
    spark.sql("CREATE OR REPLACE TEMPORARY VIEW mnist_train USING idx OPTIONS (path '" + train() + "')");
    assertEquals(60_000L, spark.sql("SELECT count(*) FROM mnist_train").first().getLong(0));
  }

  @Test
  void sqlOnTheFilePathWorks() {
    List<Row> r = spark.sql("SELECT label, count(*) AS n FROM idx.`" + train() + "` GROUP BY label ORDER BY label")
        .collectAsList();
    assertEquals(10, r.size());
    assertEquals(5923L, r.get(0).getLong(1));
  }

  @Test
  void mllibLogisticRegressionFitsOnTheVectorOutput() {
    Dataset<Row> trainDf = spark.read().format("idx").option("imageFormat", "vector").load(train());
    Dataset<Row> testDf = spark.read().format("idx").option("imageFormat", "vector")
        .load(mnist.resolve("t10k-images-idx3-ubyte").toString());
    assertEquals(List.of("index", "label", "features"), List.of(trainDf.columns()));
    LogisticRegressionModel lr = new LogisticRegression().setMaxIter(25).setRegParam(1e-4).fit(trainDf);
    double acc = new MulticlassClassificationEvaluator().setMetricName("accuracy").evaluate(lr.transform(testDf));
    assertTrue(acc >= 0.90, "logistic regression test accuracy " + acc);
  }
}
