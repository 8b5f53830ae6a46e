package dev.convspark.ml;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.datasets.mnist.MnistArrays;
import dev.convspark.ml.feature.ImageVectorizer;
import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import javax.imageio.ImageIO;
import org.apache.spark.ml.Pipeline;
import org.apache.spark.ml.PipelineModel;
import org.apache.spark.ml.PipelineStage;
import org.apache.spark.ml.attribute.AttributeGroup;
import org.apache.spark.ml.linalg.Vector;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link ImageVectorizer} in front of {@link CnnClassifier}: a Pipeline fitted on an image
 * directory scores image files, saved and loaded; the idx source's structs give its vectors, file
 * bytes scaled with {@code resize} give the pixels of the same image at the model's size; bad
 * params and bad images are named, or skipped when asked.
 */
class ImageVectorizerTest {

  private static final Path MNIST = MnistArrays.defaultDir().toAbsolutePath();
  private static SparkSession spark;

  @TempDir
  Path tmp;

  @BeforeAll
  static void start() {
    spark = LocalSessions.builder("convspark-image-vectorizer").getOrCreate();
  }

  @AfterAll
  static void stop() {
    spark.stop();
  }

  /** MNIST test images 0..n-1 under {@code dir/LABEL/dI.png}, each pixel a {@code f x f} block. */
  private static void write(Path dir, MnistArrays test, int n, int f) throws Exception {
    int side = 28 * f;
    for (int i = 0; i < n; i++) {
      BufferedImage img = new BufferedImage(side, side, BufferedImage.TYPE_BYTE_GRAY);
      for (int p = 0; p < side * side; p++) {
        int y = p / side;
        int x = p % side;
        img.getRaster().setSample(x, y, 0, Math.round(test.images()[i * 784 + (y / f) * 28 + x / f] * 255));
      }
      Path label = dir.resolve(Integer.toString(test.labels()[i]));
      Files.createDirectories(label);
      assertTrue(ImageIO.write(img, "png", label.resolve("d" + i + ".png").toFile()));
    }
  }

  private static Map<String, double[]> byFile(Dataset<Row> d, String path, String vector) {
    Map<String, double[]> m = new HashMap<>();
    for (Row r : d.select(path, vector).collectAsList()) {
      String p = r.getString(0);
      m.put(p.substring(p.lastIndexOf('/') + 1), ((Vector) r.get(1)).toArray());
    }
    return m;
  }

  @Test
  void aPipelineFromImageFilesToPredictionsFitsScoresAndPersists() throws Exception {
    MnistArrays test = MnistArrays.load(MNIST, false);
    Path dir = tmp.resolve("images");
    write(dir, test, 60, 1);
    Dataset<Row> images = spark.read().format("image").load(dir.toString() + "/*")
        .withColumn("label", functions.regexp_extract(functions.col("image.origin"), "/(\\d+)/[^/]+$", 1)
            .cast("double"));
    Pipeline pipeline = new Pipeline().setStages(new PipelineStage[] {
        new ImageVectorizer().setInputCol("image").setHeight(28).setWidth(28),
        new CnnClassifier().setModel("softmax-regression").setOptimizer("sgd").setLearningRate(0.5).setKeepProb(1)
            .setBatchSize(20).setMaxIter(30).setNumWorkers(1).setSeed(1)});
    PipelineModel fitted = pipeline.fit(images);
    List<Row> scored = fitted.transform(images).orderBy("image.origin").select("prediction", "probability")
        .collectAsList();
    assertEquals(60, scored.size());
    String saved = tmp.resolve("pipeline").toString();
    fitted.write().save(saved);
    assertEquals(scored, PipelineModel.load(saved).transform(images).orderBy("image.origin")
        .select("prediction", "probability").collectAsList());

    ImageVectorizer v = new ImageVectorizer().setInputCol("image").setOutputCol("pixels").setHeight(28).setWidth(28)
        .setNumChannels(3).setResize(true).setHandleInvalid("skip");
    String vPath = tmp.resolve("vectorizer").toString();
    v.write().save(vPath);
    ImageVectorizer back = ImageVectorizer.load(vPath);
    assertEquals(v.extractParamMap().toString(), back.extractParamMap().toString());
    Dataset<Row> colour = back.transform(images);
    assertEquals(2352, AttributeGroup.fromStructField(colour.schema().apply("pixels")).size());
    Row first = colour.select("pixels").head();
    double[] p = ((Vector) first.get(0)).toArray();
    assertEquals(p[0], p[1], 0.0, "a gray image in all three channels");
  }

  @Test
  void structsGiveTheIdxSourcesVectorsAndFilesScaledWithResizeGiveTheSamePixels() throws Exception {
    String t10k = MNIST.resolve("t10k-images-idx3-ubyte").toString();
    Dataset<Row> structs = spark.read().format("idx").load(t10k).limit(100);
    Dataset<Row> vectors = spark.read().format("idx").option("imageFormat", "vector").load(t10k).limit(100);
    List<Row> a = new ImageVectorizer().setInputCol("image").setHeight(28).setWidth(28).transform(structs)
        .orderBy("index").select("features").collectAsList();
    List<Row> b = vectors.orderBy("index").select("features").collectAsList();
    for (int i = 0; i < a.size(); i++) {
      // The idx source scales in float32; the vectorizer in float64.
      assertArrayEquals(((Vector) b.get(i).get(0)).toArray(), ((Vector) a.get(i).get(0)).toArray(), 1e-7);
    }

    MnistArrays test = MnistArrays.load(MNIST, false);
    write(tmp.resolve("small"), test, 10, 1);
    write(tmp.resolve("big"), test, 10, 2);
    Map<String, double[]> small = byFile(new ImageVectorizer().setInputCol("image").setHeight(28).setWidth(28)
        .transform(spark.read().format("image").option("recursiveFileLookup", true)
            .load(tmp.resolve("small").toString())), "image.origin", "features");
    Dataset<Row> bigFiles = spark.read().format("binaryFile").option("recursiveFileLookup", true)
        .load(tmp.resolve("big").toString());
    ImageVectorizer fromFiles = new ImageVectorizer().setInputCol("content").setHeight(28).setWidth(28);
    String refused = failure(() -> fromFiles.transform(bigFiles).collectAsList());
    assertTrue(refused.contains("(column 'content') is 56x56 pixels, but the model reads 28x28; resize the images"
        + " first, or set the param resize"), refused);
    Map<String, double[]> big = byFile(fromFiles.setResize(true).transform(bigFiles), "path", "features");
    assertEquals(small.keySet(), big.keySet());
    for (String f : small.keySet()) {
      assertArrayEquals(small.get(f), big.get(f), 0.0, f);
    }

    // A file that is not an image: named, or its row skipped.
    Files.writeString(tmp.resolve("big/7/broken.png"), "not a picture");
    Dataset<Row> withBroken = spark.read().format("binaryFile").option("recursiveFileLookup", true)
        .load(tmp.resolve("big").toString());
    String broken = failure(() -> fromFiles.transform(withBroken).collectAsList());
    assertTrue(broken.contains("broken.png (column 'content') could not be decoded"), broken);
    assertEquals(10, fromFiles.setHandleInvalid("skip").transform(withBroken).count());
  }

  @Test
  void badParamsAndColumnsAreNamed() {
    Dataset<Row> structs = spark.read().format("idx").load(MNIST.resolve("t10k-images-idx3-ubyte").toString())
        .limit(5);
    IllegalArgumentException unset = assertThrows(IllegalArgumentException.class,
        () -> new ImageVectorizer().setInputCol("image").setWidth(28).transform(structs));
    assertTrue(unset.getMessage().contains("param height is not set"), unset.getMessage());
    IllegalArgumentException type = assertThrows(IllegalArgumentException.class,
        () -> new ImageVectorizer().setInputCol("label").setHeight(28).setWidth(28).transform(structs));
    assertTrue(type.getMessage().contains("input column 'label' has type int; expected Spark's image struct or"
        + " binary encoded image files"), type.getMessage());
    IllegalArgumentException exists = assertThrows(IllegalArgumentException.class,
        () -> new ImageVectorizer().setInputCol("image").setOutputCol("label").setHeight(28).setWidth(28)
            .transform(structs));
    assertTrue(exists.getMessage().contains("output column 'label' already exists"), exists.getMessage());
    for (Runnable bad : List.<Runnable>of(() -> new ImageVectorizer().setNumChannels(2),
        () -> new ImageVectorizer().setHeight(0), () -> new ImageVectorizer().setHandleInvalid("keep"))) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, bad::run);
      assertTrue(e.getMessage().matches(".*parameter (numChannels|height|handleInvalid) given invalid value.*"),
          e.getMessage());
    }
  }

  /** The messages of what {@code r} throws, causes included (Spark wraps a task's failure). */
  private static String failure(Runnable r) {
    Throwable t = assertThrows(Exception.class, r::run);
    StringBuilder s = new StringBuilder();
    for (; t != null; t = t.getCause()) {
      s.append(t.getMessage()).append('\n');
    }
    return s.toString();
  }
}
