package dev.convspark.jobs;

import dev.convspark.datasets.mnist.MnistArrays;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Supplier;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.catalyst.util.ArrayData;

/**
 * {@code convspark bench idx}: reads the 60,000 MNIST training images into a DataFrame and sums
 * every pixel, through the idx source's columnar (Arrow) path, its row path, and Spark's own
 * Parquet scan of the same data; medians of repeats, and ratios.
 */
final class BenchIdxCommand {

  private BenchIdxCommand() {
  }

  static int run(String[] args) throws IOException {
    int repeats = 3;
    Path data = MnistArrays.defaultDir();
    Path json = null;
    String master = "local[2]";
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--repeats" -> repeats = Args.intValue(args, ++i, "--repeats", 1, 100);
        case "--data" -> data = Path.of(Args.value(args, ++i, "--data"));
        case "--json" -> json = Path.of(Args.value(args, ++i, "--json"));
        case "--master" -> master = Args.value(args, ++i, "--master");
        case "-h", "--help" -> {
          System.out.println("usage: convspark bench idx [--repeats 3] [--data data/mnist] [--master local[2]] [--json FILE]\n"
              + "  Times reading the 60,000 MNIST training images as array<float> and summing every pixel:\n"
              + "  idx columnar (Arrow), idx row by row, and Parquet (written once from the same data).");
          return 0;
        }
        default -> throw new UsageException("bench idx: unknown argument '" + args[i] + "'");
      }
    }
    String images = data.resolve("train-images-idx3-ubyte").toAbsolutePath().toString();
    Path parquet = Files.createTempDirectory("convspark-bench-parquet-");
    SparkSession spark = SparkSession.builder().master(master).appName("convspark bench idx")
        .config("spark.ui.enabled", "false").getOrCreate();
    Map<String, Object> out = new LinkedHashMap<>();
    try {
      spark.read().format("idx").option("imageFormat", "array").load(images)
          .write().mode("overwrite").parquet(parquet.toString());
      Supplier<Dataset<Row>> columnar = () -> spark.read().format("idx").option("imageFormat", "array").load(images);
      Supplier<Dataset<Row>> rows = () -> spark.read().format("idx").option("imageFormat", "array")
          .option("columnarReads", "false").load(images);
      Supplier<Dataset<Row>> pq = () -> spark.read().parquet(parquet.toString());
      double expected = pixelSum(columnar.get());
      List<Double> c = new ArrayList<>();
      List<Double> r = new ArrayList<>();
      List<Double> p = new ArrayList<>();
      // One untimed round warms the JIT and the file cache for all three.
      for (int round = -1; round < repeats; round++) {
        time(columnar, expected, round >= 0 ? c : null, "idx columnar");
        time(rows, expected, round >= 0 ? r : null, "idx rows");
        time(pq, expected, round >= 0 ? p : null, "parquet");
      }
      double cs = BenchEngineCommand.median(c);
      double rs = BenchEngineCommand.median(r);
      double ps = BenchEngineCommand.median(p);
      System.out.println();
      System.out.println("| read 60,000 MNIST images + sum every pixel (" + master + ") | median s | vs Parquet |");
      System.out.println("| --- | --- | --- |");
      System.out.printf(Locale.ROOT, "| idx, columnar (Arrow) | %.3f | %.2fx |%n", cs, ps / cs);
      System.out.printf(Locale.ROOT, "| idx, row by row | %.3f | %.2fx |%n", rs, ps / rs);
      System.out.printf(Locale.ROOT, "| Parquet (Spark's own scan) | %.3f | 1.00x |%n", ps);
      System.out.println("(a ratio above 1 means faster than Parquet)");
      out.put("columnar_s", cs);
      out.put("row_s", rs);
      out.put("parquet_s", ps);
      out.put("columnar_s_all", c);
      out.put("row_s_all", r);
      out.put("parquet_s_all", p);
      out.put("pixel_sum", expected);
    } finally {
      spark.stop();
      try (var walk = Files.walk(parquet)) {
        walk.sorted(java.util.Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
      }
    }
    if (json != null) {
      Files.writeString(json, Json.write(out));
      System.out.println("wrote " + json);
    }
    return 0;
  }

  /**
   * Sums every pixel on Spark's internal rows, so the figure is the scan's cost, not that of an
   * interpreted SQL lambda over 784 elements (which would take most of the time for all three).
   */
  private static double pixelSum(Dataset<Row> df) {
    Dataset<Row> features = df.select("features");
    return features.queryExecution().toRdd().toJavaRDD().map(row -> {
      ArrayData a = row.getArray(0);
      double s = 0;
      for (int i = 0, n = a.numElements(); i < n; i++) {
        s += a.getFloat(i);
      }
      return s;
    }).reduce(Double::sum);
  }

  private static void time(Supplier<Dataset<Row>> df, double expected, List<Double> into, String what) {
    long t0 = System.nanoTime();
    double sum = pixelSum(df.get());
    double sec = (System.nanoTime() - t0) / 1e9;
    if (Math.abs(sum - expected) > 1e-6 * Math.abs(expected)) {
      throw new IllegalStateException(what + " summed the pixels to " + sum + " but the columnar read gave " + expected);
    }
    if (into != null) {
      into.add(sec);
      System.out.printf(Locale.ROOT, "%-13s %.3f s%n", what, sec);
    }
  }
}
