package dev.convspark.datasets.mnist;

import dev.convspark.datasets.idx.IdxFormatException;
import dev.convspark.datasets.idx.IdxHeader;
import dev.convspark.datasets.idx.IdxReader;
import dev.convspark.datasets.idx.IdxType;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * One MNIST split in memory, for code that trains without Spark (engine tests, benchmarks):
 * pixels scaled to [0, 1] as floats, one image after another (28x28x1, row-major), and labels.
 *
 * @param images {@code count * rows * cols} floats
 * @param labels {@code count} class indices 0 to 9
 * @param count  number of images
 * @param rows   image height
 * @param cols   image width
 */
public record MnistArrays(float[] images, int[] labels, int count, int rows, int cols) {

  /**
   * Loads the training split ({@code train-*}) or the test split ({@code t10k-*}) from
   * {@code dir}, raw or gzip (a {@code .gz} name is used when the raw one is absent).
   *
   * @throws IOException naming the file when it is missing, not unsigned-byte IDX of the expected
   *                     shape, or when images and labels counts differ
   */
  public static MnistArrays load(Path dir, boolean train) throws IOException {
    String prefix = train ? "train" : "t10k";
    Path imagesPath = find(dir, prefix + "-images-idx3-ubyte");
    Path labelsPath = find(dir, prefix + "-labels-idx1-ubyte");
    byte[] pixels;
    IdxHeader ih;
    try (IdxReader r = IdxReader.open(imagesPath)) {
      ih = r.header();
      if (ih.type() != IdxType.UNSIGNED_BYTE || ih.dims().length != 3) {
        throw new IdxFormatException(imagesPath.toString(), "expected unsigned-byte images [count, rows, cols] but found " + ih);
      }
      pixels = r.readAll();
    }
    byte[] labelBytes;
    try (IdxReader r = IdxReader.open(labelsPath)) {
      IdxHeader lh = r.header();
      if (lh.type() != IdxType.UNSIGNED_BYTE || lh.dims().length != 1) {
        throw new IdxFormatException(labelsPath.toString(), "expected unsigned-byte labels [count] but found " + lh);
      }
      if (lh.count() != ih.count()) {
        throw new IdxFormatException(labelsPath.toString(), "has " + lh.count() + " labels but " + imagesPath + " has "
            + ih.count() + " images");
      }
      labelBytes = r.readAll();
    }
    float[] images = new float[pixels.length];
    for (int i = 0; i < pixels.length; i++) {
      images[i] = (pixels[i] & 0xff) / 255f;
    }
    int[] labels = new int[labelBytes.length];
    for (int i = 0; i < labels.length; i++) {
      labels[i] = labelBytes[i] & 0xff;
    }
    int[] d = ih.dims();
    return new MnistArrays(images, labels, d[0], d[1], d[2]);
  }

  private static Path find(Path dir, String name) throws IOException {
    Path raw = dir.resolve(name);
    if (Files.exists(raw)) {
      return raw;
    }
    Path gz = dir.resolve(name + ".gz");
    if (Files.exists(gz)) {
      return gz;
    }
    throw new IOException("MNIST file " + raw + " not found (run 'bin/convspark fetch-mnist --dir " + dir + "')");
  }

  /** The MNIST directory the build's tests use: system property {@code convspark.mnist.dir}, else {@code data/mnist}. */
  public static Path defaultDir() {
    return Path.of(System.getProperty("convspark.mnist.dir", "data/mnist"));
  }
}
