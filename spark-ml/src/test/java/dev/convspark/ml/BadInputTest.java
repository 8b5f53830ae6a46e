package dev.convspark.ml;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.apache.spark.ml.linalg.SQLDataTypes;
import org.apache.spark.ml.linalg.Vectors;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Bad input end to end, in fit and in transform: each fails with a message naming what was wrong. */
class BadInputTest {

  private static final String SPEC = "in4x4x1-dense3";
  private static final StructType SCHEMA = new StructType()
      .add("features", SQLDataTypes.VectorType(), true).add("label", DataTypes.DoubleType, true);
  private static SparkSession spark;

  @TempDir
  Path tmp;

  @BeforeAll
  static void start() {
    spark = LocalSessions.builder("convspark-bad-input").getOrCreate();
  }

  @AfterAll
  static void stop() {
    spark.stop();
  }

  /** {@code n} separable rows of 16 features and 3 classes, with {@code bad} replacing row 7. */
  private static Dataset<Row> rows(int n, Row bad) {
    return rows(n, bad, 1);
  }

  private static Dataset<Row> rows(int n, Row bad, double scale) {
    Random r = new Random(5);
    List<Row> rows = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      double[] x = new double[16];
      int label = i % 3;
      for (int j = 0; j < 16; j++) {
        x[j] = (r.nextGaussian() * 0.1 + (j % 3 == label ? 1 : 0)) * scale;
      }
      rows.add(i == 7 && bad != null ? bad : RowFactory.create(Vectors.dense(x), (double) label));
    }
    return spark.createDataFrame(rows, SCHEMA).repartition(2);
  }

  private static String fitError(Dataset<Row> data) {
    return Failures.messages(assertThrows(Exception.class, () -> classifier().fit(data)));
  }

  private static CnnClassifier classifier() {
    return new CnnClassifier().setModel(SPEC).setOptimizer("sgd").setLearningRate(0.1).setBatchSize(10).setMaxIter(5)
        .setKeepProb(1.0).setNumWorkers(2);
  }

  @Test
  void nonFiniteNullAndWrongSizeFeaturesFailFitAndTransformNamingTheColumn() {
    double[] nan = new double[16];
    nan[5] = Double.NaN;
    double[] inf = new double[16];
    inf[2] = Double.POSITIVE_INFINITY;
    String m = fitError(rows(40, RowFactory.create(Vectors.dense(nan), 1.0)));
    assertTrue(m.contains("features column 'features' holds a non-finite value (NaN) at position 5"), m);
    m = fitError(rows(40, RowFactory.create(Vectors.dense(inf), 1.0)));
    assertTrue(m.contains("non-finite value (Infinity) at position 2"), m);
    m = fitError(rows(40, RowFactory.create(null, 1.0)));
    assertTrue(m.contains("features column 'features' holds a null"), m);
    m = fitError(rows(40, RowFactory.create(Vectors.dense(new double[15]), 1.0)));
    assertTrue(m.contains("holds 15 values per row but the model's input needs 16"), m);
    m = fitError(rows(40, RowFactory.create(Vectors.dense(new double[16]), null)));
    assertTrue(m.contains("label column 'label' holds a null"), m);
    m = fitError(rows(40, RowFactory.create(Vectors.dense(new double[16]), -1.0)));
    assertTrue(m.contains("label column 'label' holds -1.0"), m);

    CnnClassificationModel model = classifier().fit(rows(40, null));
    m = Failures.messages(assertThrows(Exception.class,
        () -> model.transform(rows(40, RowFactory.create(Vectors.dense(nan), 1.0))).collect()));
    assertTrue(m.contains("non-finite value (NaN)"), "scoring refuses NaN too: " + m);
  }

  @Test
  void deviceAndInferenceBatchSizeParams() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> classifier().setDevice("tpu"));
    assertTrue(e.getMessage().contains("device"), e.getMessage());
    // No GPU on the machines the tests run on: gpu fails once, clearly, in both sync modes; auto trains on the CPU.
    for (String mode : List.of("barrier", "driver")) {
      String m = Failures.messages(assertThrows(Exception.class, () -> classifier().setSyncMode(mode).setDevice("gpu").fit(rows(40, null))));
      assertTrue(m.contains("device=gpu: ") && (m.contains("libcuda.so.1") || m.contains("GPU")), mode + ": " + m);
    }
    CnnClassificationModel auto = classifier().setDevice("auto").fit(rows(40, null));
    assertEquals("auto", auto.getOrDefault(auto.device()), "the model takes the estimator's device");
    List<Row> a = auto.setInferenceBatchSize(3).transform(rows(40, null)).select("probability").collectAsList();
    List<Row> b = auto.setInferenceBatchSize(1000).transform(rows(40, null)).select("probability").collectAsList();
    assertEquals(a, b, "scores do not depend on the inference batch size");
    assertThrows(IllegalArgumentException.class, () -> auto.setInferenceBatchSize(0));
    e = assertThrows(IllegalArgumentException.class, () -> classifier().setPrecision("fp16"));
    assertTrue(e.getMessage().contains("precision") && e.getMessage().contains("fp16"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> auto.setPrecision("bf16"));
    assertTrue(e.getMessage().contains("precision") && e.getMessage().contains("bf16"), e.getMessage());
    // The CPU computes in float32 whatever precision says: tf32 trains and scores as fp32 there.
    CnnClassificationModel tf32 = classifier().setDevice("cpu").setPrecision("tf32").fit(rows(40, null));
    assertEquals("tf32", tf32.getOrDefault(tf32.precision()), "the model takes the estimator's precision");
    CnnClassificationModel fp32 = classifier().setDevice("cpu").fit(rows(40, null));
    assertArrayEquals(fp32.weights(), tf32.weights());
    assertEquals(fp32.transform(rows(40, null)).select("probability").collectAsList(),
        tf32.transform(rows(40, null)).select("probability").collectAsList());
  }

  @Test
  void binaryFeaturesInTheDeclaredShapeScoreLikeTheirVectors() throws java.io.IOException {
    Dataset<Row> data = rows(40, null);
    CnnClassificationModel m = classifier().fit(data);
    org.apache.spark.sql.api.java.UDF1<org.apache.spark.ml.linalg.Vector, byte[]> toFloat32 = v -> {
      java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(4 * v.size()).order(java.nio.ByteOrder.LITTLE_ENDIAN);
      for (double d : v.toArray()) {
        b.putFloat((float) d);
      }
      return b.array();
    };
    Dataset<Row> binary = data.withColumn("bytes", org.apache.spark.sql.functions.udf(toFloat32, DataTypes.BinaryType)
        .apply(org.apache.spark.sql.functions.col("features")));
    List<Row> fromVectors = m.transform(data).select("probability").collectAsList();
    List<Row> fromBytes = m.setFeaturesCol("bytes").transform(binary).select("probability").collectAsList();
    assertEquals(fromVectors, fromBytes);
    Dataset<Row> wrong = binary.withColumn("bytes", org.apache.spark.sql.functions.lit(new byte[10]));
    String msg = Failures.messages(assertThrows(Exception.class, () -> m.transform(wrong).collect()));
    assertTrue(msg.contains("features column 'bytes' holds 10 bytes in a row, but the model's input needs 16"
        + " (unsigned bytes) or 64 (float32)") && !msg.contains("file"), msg);
    // An encoded image file (a table from Spark's binaryFile source) is told apart by its first bytes.
    java.io.ByteArrayOutputStream png = new java.io.ByteArrayOutputStream();
    javax.imageio.ImageIO.write(new java.awt.image.BufferedImage(4, 4, java.awt.image.BufferedImage.TYPE_BYTE_GRAY),
        "png", png);
    Dataset<Row> file = binary.withColumn("bytes", org.apache.spark.sql.functions.lit(png.toByteArray()));
    msg = Failures.messages(assertThrows(Exception.class, () -> m.transform(file).collect()));
    assertTrue(msg.contains("; they are a PNG file: decode it first (Spark's image source reads image files"), msg);
  }

  @Test
  void everyFeatureTypeTrainsToTheWeightsOfItsVectorsAndNullElementsAreNamed() {
    // Training reads Spark's internal rows in place, each column type its own way.
    Dataset<Row> data = rows(40, null);
    float[] expected = classifier().fit(data).weights();
    org.apache.spark.sql.api.java.UDF1<org.apache.spark.ml.linalg.Vector, org.apache.spark.ml.linalg.Vector> sparse =
        org.apache.spark.ml.linalg.Vector::toSparse;
    org.apache.spark.sql.api.java.UDF1<org.apache.spark.ml.linalg.Vector, float[]> floats = v -> {
      float[] f = new float[v.size()];
      for (int i = 0; i < f.length; i++) {
        f[i] = (float) v.apply(i);
      }
      return f;
    };
    org.apache.spark.sql.api.java.UDF1<org.apache.spark.ml.linalg.Vector, byte[]> float32 = v -> {
      java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(4 * v.size()).order(java.nio.ByteOrder.LITTLE_ENDIAN);
      for (double d : v.toArray()) {
        b.putFloat((float) d);
      }
      return b.array();
    };
    org.apache.spark.sql.Column features = org.apache.spark.sql.functions.col("features");
    java.util.Map<String, org.apache.spark.sql.Column> forms = new java.util.LinkedHashMap<>();
    forms.put("sparse vector", org.apache.spark.sql.functions.udf(sparse, SQLDataTypes.VectorType()).apply(features));
    forms.put("array<float>", org.apache.spark.sql.functions.udf(floats,
        DataTypes.createArrayType(DataTypes.FloatType)).apply(features));
    forms.put("array<double>", org.apache.spark.ml.functions.vector_to_array(features, "float64"));
    forms.put("binary", org.apache.spark.sql.functions.udf(float32, DataTypes.BinaryType).apply(features));
    for (java.util.Map.Entry<String, org.apache.spark.sql.Column> f : forms.entrySet()) {
      Dataset<Row> other = data.withColumn("x", f.getValue()).withColumn("label", data.col("label").cast("int"));
      org.junit.jupiter.api.Assertions.assertArrayEquals(expected, classifier().setFeaturesCol("x").fit(other).weights(),
          f.getKey() + " features with int labels");
    }
    org.apache.spark.sql.Column[] withHole = new org.apache.spark.sql.Column[16];
    for (int i = 0; i < 16; i++) {
      withHole[i] = org.apache.spark.sql.functions.lit(i == 3 ? null : 0.5).cast("double");
    }
    Dataset<Row> holes = data.withColumn("x", org.apache.spark.sql.functions.when(data.col("label").equalTo(2),
        org.apache.spark.sql.functions.array(withHole)).otherwise(org.apache.spark.ml.functions.vector_to_array(features, "float64")));
    String m = Failures.messages(assertThrows(Exception.class, () -> classifier().setFeaturesCol("x").fit(holes)));
    assertTrue(m.contains("features column 'x' holds a null at position 3"), m);
    CnnClassificationModel model = classifier().setFeaturesCol("x").fit(data.withColumn("x",
        org.apache.spark.ml.functions.vector_to_array(features, "float64")));
    m = Failures.messages(assertThrows(Exception.class, () -> model.transform(holes).collect()));
    assertTrue(m.contains("features column 'x' holds a null at position 3"), "scoring too: " + m);
  }

  @Test
  void aPartitionSmallerThanItsShareOfTheBatchTrains() {
    // 3 rows in one partition and 57 in the other, batch 50: the small one gives all it has.
    List<Row> all = rows(60, null).collectAsList();
    org.apache.spark.api.java.JavaSparkContext jsc = new org.apache.spark.api.java.JavaSparkContext(spark.sparkContext());
    Dataset<Row> data = spark.createDataFrame(jsc.parallelize(all.subList(0, 3), 1)
        .union(jsc.parallelize(all.subList(3, 60), 1)), SCHEMA);
    assertEquals(List.of(3, 57), data.javaRDD().glom().map(List::size).collect());
    CnnClassificationModel m = classifier().setBatchSize(50).setMaxIter(20).fit(data);
    assertEquals(20, m.summary().totalIterations());
  }

  @Test
  void aNanLossStopsTrainingWithTheStepAndAHintAndSavesNoCheckpoint() throws Exception {
    Dataset<Row> data = rows(40, null, 1e19);
    Path dir = tmp.resolve("ckpt");
    for (String mode : List.of("barrier", "driver")) {
      String m = Failures.messages(assertThrows(Exception.class, () -> classifier().setLearningRate(1e30).setMaxIter(50)
          .setSyncMode(mode).setCheckpointDir(dir.toString()).setCheckpointInterval(1).fit(data)));
      assertTrue(m.contains("at step") && m.contains("lower learningRate"), mode + ": " + m);
    }
    if (Files.exists(dir)) {
      try (var files = Files.list(dir)) {
        for (Path p : files.toList()) {
          if (p.getFileName().toString().endsWith(".cspk")) {
            for (float v : dev.convspark.tensor.io.ModelFile.read(p).params()) {
              assertFalse(Float.isNaN(v) || Float.isInfinite(v), p + " holds a non-finite weight");
            }
          }
        }
      }
    }
  }
}
