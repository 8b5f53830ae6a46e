package dev.convspark.jobs;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.datasets.mnist.MnistArrays;
import dev.convspark.ml.CnnClassifier;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import javax.imageio.ImageIO;
import org.apache.spark.ml.linalg.Vector;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.functions;
import org.junit.jupiter.api.Test;

/**
 * A table of encoded image files (Spark's {@code binaryFile} source, written to Parquet) is scored,
 * evaluated and trained on as its image directory is: the same pixels, so the same probabilities,
 * for gray and colour PNGs and JPEGs; a file that does not decode fails naming its path and the
 * column, or with {@code --handle-invalid keep} is a row that says why; a column of raw pixel bytes
 * is still read as the model's own binary input.
 */
class ImageTableTest extends OnLocalSession {

  private static final Path MNIST = MnistArrays.defaultDir().toAbsolutePath();
  /** MNIST test images {@code from..from+n} as files under {@code dir/LABEL/}, in turn gray PNG, colour PNG, gray JPEG. */
  private static void writeImages(Path dir, MnistArrays test, int from, int n) throws IOException {
    for (int i = from; i < from + n; i++) {
      int kind = i % 3;
      BufferedImage img = new BufferedImage(28, 28, kind == 1 ? BufferedImage.TYPE_INT_RGB : BufferedImage.TYPE_BYTE_GRAY);
      for (int p = 0; p < 784; p++) {
        int v = Math.round(test.images()[i * 784 + p] * 255);
        if (kind == 1) {
          // A tinted colour image: its luma is what the model reads.
          img.setRGB(p % 28, p / 28, (v << 16) | ((255 - v) / 2 << 8) | (v / 3));
        } else {
          img.getRaster().setSample(p % 28, p / 28, 0, v);
        }
      }
      Path label = dir.resolve(Integer.toString(test.labels()[i]));
      Files.createDirectories(label);
      String format = kind == 2 ? "jpeg" : "png";
      assertTrue(ImageIO.write(img, format, label.resolve("img" + i + "." + format).toFile()));
    }
  }

  /** The scores at {@code out}, by file name: probability and prediction. */
  private static Map<String, Row> byFile(String out, String pathColumn) {
    Map<String, Row> m = new HashMap<>();
    for (Row r : spark.read().parquet(out).select(pathColumn, "probability", "prediction").collectAsList()) {
      String p = r.getString(0);
      m.put(p.substring(p.lastIndexOf('/') + 1), r);
    }
    return m;
  }

  private static void assertSameScores(Map<String, Row> a, Map<String, Row> b) {
    assertEquals(a.keySet(), b.keySet());
    for (String f : a.keySet()) {
      assertArrayEquals(((Vector) a.get(f).get(1)).toArray(), ((Vector) b.get(f).get(1)).toArray(), 0.0, f);
      assertEquals(a.get(f).getDouble(2), b.get(f).getDouble(2), f);
    }
  }

  /** Softmax regression trained a little on MNIST, saved; its folder. */
  private String softmaxModel() throws IOException {
    String model = tmp.resolve("model").toString();
    new CnnClassifier().setModel("softmax-regression").setOptimizer("sgd").setLearningRate(0.5).setKeepProb(1)
        .setMaxIter(30).setNumWorkers(1).setSeed(4)
        .fit(spark.read().format("idx").option("imageFormat", "vector")
            .load(MNIST.resolve("train-images-idx3-ubyte").toString()).limit(1500))
        .write().save(model);
    return model;
  }

  @Test
  void aTableOfEncodedImagesScoresAsItsDirectoryAndABadFileIsNamed() throws Exception {
    MnistArrays test = MnistArrays.load(MNIST, false);
    Path dir = tmp.resolve("images");
    writeImages(dir, test, 0, 30);
    String model = softmaxModel();

    // The table: each file's bytes in `content`, its path in `path`, its label from its folder's name.
    String table = tmp.resolve("table.parquet").toString();
    Dataset<Row> files = spark.read().format("binaryFile").option("recursiveFileLookup", true).load(dir.toString())
        .withColumn("label", functions.regexp_extract(functions.col("path"), "/(\\d+)/[^/]+$", 1).cast("double"));
    files.write().parquet(table);

    InProcessJobs.ok("score", "--model", model, "--data", dir.toString(), "--output", tmp.resolve("dir").toString());
    InProcessJobs.ok("score", "--model", model, "--data", table, "--features-col", "content", "--output",
        tmp.resolve("table").toString());
    Map<String, Row> fromDir = byFile(tmp.resolve("dir").toString(), "origin");
    Map<String, Row> fromTable = byFile(tmp.resolve("table").toString(), "path");
    assertEquals(30, fromTable.size());
    assertSameScores(fromDir, fromTable);
    assertTrue(List.of(spark.read().parquet(tmp.resolve("table").toString()).columns()).containsAll(
        List.of("path", "label", "prediction", "probability")), "the table's own columns kept, the bytes dropped");

    InProcessJobs.ok("evaluate", "--model", model, "--data", table, "--features-col", "content", "--output",
        tmp.resolve("eval").toString());
    assertTrue(Files.readString(tmp.resolve("eval/metrics.json")).contains("\"count\": 30"));
    InProcessJobs.ok("train", "--data", table, "--features-col", "content", "--model", "softmax-regression",
        "--max-iter", "2", "--batch-size", "10", "--num-workers", "1", "--output", tmp.resolve("run").toString());

    // The same pixels as raw bytes (the model's own binary input) score alike.
    String raw = tmp.resolve("raw.parquet").toString();
    spark.read().format("idx").load(MNIST.resolve("t10k-images-idx3-ubyte").toString()).limit(5)
        .select(functions.col("index"), functions.col("image.data").as("pixels")).write().parquet(raw);
    InProcessJobs.ok("score", "--model", model, "--data", raw, "--features-col", "pixels", "--output",
        tmp.resolve("raw-scores").toString());
    assertEquals(5, spark.read().parquet(tmp.resolve("raw-scores").toString()).count());

    // A file that is not an image fails the job naming it and the column, or is kept saying why.
    Files.writeString(dir.resolve("7/broken.png"), "not a picture");
    String withBroken = tmp.resolve("broken.parquet").toString();
    spark.read().format("binaryFile").option("recursiveFileLookup", true).load(dir.toString()).write()
        .parquet(withBroken);
    InProcessJobs.assertFails(1, "broken.png (column 'content') could not be decoded (13 bytes, not a PNG, JPEG, GIF"
        + " or BMP file", "score", "--model", model, "--data", withBroken, "--features-col", "content", "--output",
        tmp.resolve("fails").toString());
    InProcessJobs.ok("score", "--model", model, "--data", withBroken, "--features-col", "content", "--output",
        tmp.resolve("kept").toString(), "--handle-invalid", "keep");
    for (Row r : spark.read().parquet(tmp.resolve("kept").toString()).select("path", "prediction", "error")
        .collectAsList()) {
      if (r.getString(0).endsWith("broken.png")) {
        assertNull(r.get(1));
        assertTrue(r.getString(2).contains("could not be decoded"), r.getString(2));
      } else {
        assertNotNull(r.get(1));
        assertNull(r.get(2), r.getString(0));
      }
    }
  }

  @Test
  void aColourModelReadsBlueGreenRedAsSparksImageStructHoldsThem() throws Exception {
    // Two classes a gray picture cannot tell apart: a dim red half beside a blue half of the same
    // luma (0.299 x 97 = 0.114 x 255), red on the left for class 0 and on the right for class 1.
    Path dir = tmp.resolve("colour");
    java.util.Random rnd = new java.util.Random(9);
    for (int i = 0; i < 80; i++) {
      int label = i % 2;
      BufferedImage img = new BufferedImage(8, 8, BufferedImage.TYPE_INT_RGB);
      for (int y = 0; y < 8; y++) {
        for (int x = 0; x < 8; x++) {
          boolean red = (x < 4) == (label == 0);
          int jitter = rnd.nextInt(9) - 4;
          img.setRGB(x, y, red ? (97 + jitter) << 16 : 251 + jitter);
        }
      }
      Files.createDirectories(dir.resolve(Integer.toString(label)));
      assertTrue(ImageIO.write(img, "png", dir.resolve(label + "/c" + i + ".png").toFile()));
    }
    String spec = "in8x8x3-conv3x3x4-relu-pool2-dense2";
    Path run = tmp.resolve("colour-run");
    InProcessJobs.ok("train", "--data", dir.toString(), "--model", spec, "--max-iter", "60", "--batch-size", "20",
        "--learning-rate", "0.01", "--num-workers", "1", "--seed", "2", "--output", run.toString());
    InProcessJobs.ok("evaluate", "--model", run.resolve("model").toString(), "--data", dir.toString(), "--output",
        tmp.resolve("colour-eval").toString());
    String metrics = Files.readString(tmp.resolve("colour-eval/metrics.json"));
    java.util.regex.Matcher acc = java.util.regex.Pattern.compile("\"accuracy\": ([0-9.]+)").matcher(metrics);
    assertTrue(acc.find() && Double.parseDouble(acc.group(1)) >= 0.95, "colour reaches the model: " + metrics);

    // The job's route, a table of the same files, and the model on Spark's image rows score alike.
    String table = tmp.resolve("colour.parquet").toString();
    spark.read().format("binaryFile").option("recursiveFileLookup", true).load(dir.toString()).write().parquet(table);
    String model = run.resolve("model").toString();
    InProcessJobs.ok("score", "--model", model, "--data", dir.toString(), "--output", tmp.resolve("c-dir").toString());
    InProcessJobs.ok("score", "--model", model, "--data", table, "--features-col", "content", "--output",
        tmp.resolve("c-table").toString());
    Map<String, Row> fromDir = byFile(tmp.resolve("c-dir").toString(), "origin");
    assertSameScores(fromDir, byFile(tmp.resolve("c-table").toString(), "path"));
    String structs = tmp.resolve("c-structs").toString();
    dev.convspark.ml.CnnClassificationModel.load(model).setFeaturesCol("image")
        .transform(spark.read().format("image").option("recursiveFileLookup", true).load(dir.toString()))
        .select(functions.col("image.origin").as("origin"), functions.col("probability"), functions.col("prediction"))
        .write().parquet(structs);
    assertSameScores(fromDir, byFile(structs, "origin"));
  }

  @Test
  void imagesOfAnotherSizeAreRefusedOrWithResizeScaledToTheModelsInput() throws Exception {
    MnistArrays test = MnistArrays.load(MNIST, false);
    Path small = tmp.resolve("small");
    Path big = tmp.resolve("big");
    for (int i = 0; i < 12; i++) {
      // The same digit at 28 x 28 and as 2 x 2 blocks at 56 x 56: shrunk, the latter is the former.
      BufferedImage a = new BufferedImage(28, 28, BufferedImage.TYPE_BYTE_GRAY);
      BufferedImage b = new BufferedImage(56, 56, BufferedImage.TYPE_BYTE_GRAY);
      for (int p = 0; p < 56 * 56; p++) {
        int v = Math.round(test.images()[i * 784 + (p / 56 / 2) * 28 + (p % 56) / 2] * 255);
        b.getRaster().setSample(p % 56, p / 56, 0, v);
        a.getRaster().setSample(p % 56 / 2, p / 56 / 2, 0, v);
      }
      for (Path d : new Path[] {small, big}) {
        Files.createDirectories(d.resolve(Integer.toString(test.labels()[i])));
      }
      String name = test.labels()[i] + "/d" + i + ".png";
      assertTrue(ImageIO.write(a, "png", small.resolve(name).toFile()));
      assertTrue(ImageIO.write(b, "png", big.resolve(name).toFile()));
    }
    String model = softmaxModel();
    InProcessJobs.assertFails(1, "is 56x56 pixels, but the model reads 28x28; resize the images first, or give"
        + " --resize", "score", "--model", model, "--data", big.toString(), "--output", tmp.resolve("no").toString());
    InProcessJobs.ok("score", "--model", model, "--data", small.toString(), "--output", tmp.resolve("s").toString());
    InProcessJobs.ok("score", "--model", model, "--data", big.toString(), "--output", tmp.resolve("b").toString(),
        "--resize");
    Map<String, Row> expected = byFile(tmp.resolve("s").toString(), "origin");
    assertSameScores(expected, byFile(tmp.resolve("b").toString(), "origin"));
    String table = tmp.resolve("big.parquet").toString();
    spark.read().format("binaryFile").option("recursiveFileLookup", true).load(big.toString()).write().parquet(table);
    InProcessJobs.ok("score", "--model", model, "--data", table, "--features-col", "content", "--resize", "--output",
        tmp.resolve("t").toString());
    assertSameScores(expected, byFile(tmp.resolve("t").toString(), "path"));
    InProcessJobs.ok("evaluate", "--model", model, "--data", big.toString(), "--resize", "--output",
        tmp.resolve("e").toString());
    InProcessJobs.ok("train", "--data", big.toString(), "--resize", "--model", "softmax-regression", "--max-iter", "2",
        "--batch-size", "6", "--num-workers", "1", "--output", tmp.resolve("r").toString());
  }

  @Test
  void evaluateDrawsTheMisclassifiedImagesOfEveryFeaturesTypeAndErrorsNameTheTablesColumn() throws Exception {
    // Image structs and float arrays in a table: evaluate once failed drawing them, after its metrics.
    String model = softmaxModel();
    String t10k = MNIST.resolve("t10k-images-idx3-ubyte").toString();
    String structs = tmp.resolve("structs.parquet").toString();
    spark.read().format("idx").load(t10k).limit(200).write().parquet(structs);
    String arrays = tmp.resolve("arrays.parquet").toString();
    spark.read().format("idx").option("imageFormat", "array").load(t10k).limit(200).write().parquet(arrays);
    // A table's own features column is the one errors name.
    String short783 = tmp.resolve("short.parquet").toString();
    spark.read().parquet(arrays).select(functions.expr("slice(features, 1, 783)").as("pix")).write().parquet(short783);
    InProcessJobs.assertFails(1, "features column 'pix' holds 783 values per row but the model's input needs 784",
        "score", "--model", model, "--data", short783, "--features-col", "pix", "--output", tmp.resolve("x").toString());
    for (String[] table : new String[][] {{structs, "image"}, {arrays, "features"}}) {
      Path out = tmp.resolve("eval-" + table[1]);
      InProcessJobs.ok("evaluate", "--model", model, "--data", table[0], "--features-col", table[1], "--output",
          out.toString());
      BufferedImage grid = ImageIO.read(out.resolve("misclassified.png").toFile());
      assertTrue(grid.getWidth() > 100 && grid.getHeight() > 100, table[1]);
    }
  }
}

