package dev.convspark.datasets.spark;

import java.io.Serializable;
import java.util.Locale;
import java.util.Map;

/**
 * The options of the {@code idx} data source, validated when the read is planned: a bad value
 * fails there, naming the option and what it accepts.
 *
 * <ul>
 *   <li>{@code path} (or {@code load(path)}): an IDX file, a directory, or a glob;</li>
 *   <li>{@code labelsPath}: the labels file, when it is not found by the MNIST naming convention
 *       ({@code X-images-idx3-ubyte[.gz]} beside {@code X-labels-idx1-ubyte[.gz]}); only with a
 *       single data file;</li>
 *   <li>{@code imageFormat}: {@code image} (Spark's image struct, the default for 2-D and 3-D
 *       unsigned-byte records with 1, 3 or 4 channels), {@code vector} (an MLlib vector column
 *       {@code features}), or {@code array} (an {@code array<float>} column {@code features});</li>
 *   <li>{@code scale}: divide unsigned-byte values by 255 for {@code vector} and {@code array}
 *       (default {@code true});</li>
 *   <li>{@code recordsPerPartition}: at most this many records per partition of an uncompressed
 *       file (default: as many as {@code spark.sql.files.maxPartitionBytes} allows);</li>
 *   <li>{@code batchSize}: records per columnar (Arrow) batch, default 4096;</li>
 *   <li>{@code columnarReads}: read through Arrow columnar batches where the layout allows it
 *       (default {@code true}; {@code false} reads row by row).</li>
 * </ul>
 */
public final class IdxOptions implements Serializable {
  private static final long serialVersionUID = 1L;

  /** How record values are presented. */
  public enum ImageFormat {
    /** Spark's image struct in column {@code image}. */
    IMAGE,
    /** An MLlib dense vector in column {@code features}. */
    VECTOR,
    /** A flat {@code array<float>} in column {@code features}. */
    ARRAY,
    /** A flat array of the file's own element type in column {@code data} (or a scalar {@code value}). */
    RAW
  }

  /** The images (or any IDX) file's path. */
  final String path;
  /** The labels file's path, or null for none. */
  final String labelsPath;
  /** How each record is presented. */
  final ImageFormat imageFormat;
  /** Whether unsigned bytes are scaled to [0, 1]. */
  final boolean scale;
  /** Records a partition holds at most. */
  final long recordsPerPartition;
  /** Rows a columnar batch holds at most. */
  final int batchSize;
  /** Whether the scan gives columnar batches. */
  final boolean columnarReads;

  private IdxOptions(String path, String labelsPath, ImageFormat imageFormat, boolean scale, long recordsPerPartition,
                     int batchSize, boolean columnarReads) {
    this.path = path;
    this.labelsPath = labelsPath;
    this.imageFormat = imageFormat;
    this.scale = scale;
    this.recordsPerPartition = recordsPerPartition;
    this.batchSize = batchSize;
    this.columnarReads = columnarReads;
  }

  /** Parses the options (keys case-insensitive, as Spark passes them). */
  public static IdxOptions parse(Map<String, String> options) {
    String path = get(options, "path");
    if (path == null) {
      String paths = get(options, "paths");
      if (paths != null && paths.startsWith("[\"") && paths.endsWith("\"]") && !paths.contains("\",\"")) {
        path = paths.substring(2, paths.length() - 2);
      } else if (paths != null && !paths.equals("[]")) {
        throw new IllegalArgumentException("the idx source reads one path (a file, directory or glob) but got " + paths);
      }
    }
    if (path == null || path.isBlank()) {
      throw new IllegalArgumentException("the idx source needs a path: spark.read.format(\"idx\").load(path)");
    }
    String format = get(options, "imageFormat");
    ImageFormat f = null;
    if (format != null) {
      switch (format.toLowerCase(Locale.ROOT)) {
        case "image" -> f = ImageFormat.IMAGE;
        case "vector" -> f = ImageFormat.VECTOR;
        case "array" -> f = ImageFormat.ARRAY;
        case "raw" -> f = ImageFormat.RAW;
        default -> throw new IllegalArgumentException("option imageFormat must be one of image, vector, array, raw but was '"
            + format + "'");
      }
    }
    return new IdxOptions(path, get(options, "labelsPath"), f, bool(options, "scale", true),
        positiveLong(options, "recordsPerPartition", Long.MAX_VALUE), (int) positiveLong(options, "batchSize", 4096),
        bool(options, "columnarReads", true));
  }

  private static String get(Map<String, String> options, String key) {
    for (Map.Entry<String, String> e : options.entrySet()) {
      if (e.getKey().equalsIgnoreCase(key)) {
        return e.getValue();
      }
    }
    return null;
  }

  private static boolean bool(Map<String, String> options, String key, boolean dflt) {
    String v = get(options, key);
    if (v == null) {
      return dflt;
    }
    return switch (v.toLowerCase(Locale.ROOT)) {
      case "true" -> true;
      case "false" -> false;
      default -> throw new IllegalArgumentException("option " + key + " must be true or false but was '" + v + "'");
    };
  }

  private static long positiveLong(Map<String, String> options, String key, long dflt) {
    String v = get(options, key);
    if (v == null) {
      return dflt;
    }
    try {
      long x = Long.parseLong(v.trim());
      if (x < 1 || (key.equals("batchSize") && x > 1 << 20)) {
        throw new NumberFormatException();
      }
      return x;
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("option " + key + " must be a positive integer"
          + (key.equals("batchSize") ? " up to 1048576" : "") + " but was '" + v + "'");
    }
  }
}
