package dev.convspark.datasets.mnist;

import java.util.Locale;
import java.util.Objects;

/**
 * One file of a published data set, as it must be on disk: its name, its exact length in bytes and
 * its SHA-256 digest (lower-case hex). A file whose bytes do not match all three is not the file.
 *
 * @param name   the file name inside the data directory, e.g. {@code train-images-idx3-ubyte}
 * @param size   the length in bytes of the uncompressed file
 * @param sha256 the SHA-256 digest of the uncompressed file, 64 hex digits
 */
public record DatasetFile(String name, long size, String sha256) {

  /** Checks the fields: a plain file name, a non-negative size and a 64-digit hex digest. */
  public DatasetFile {
    Objects.requireNonNull(name, "name");
    Objects.requireNonNull(sha256, "sha256");
    if (name.isEmpty() || name.contains("/") || name.contains("\\")) {
      throw new IllegalArgumentException("DatasetFile name must be a plain file name but was '" + name + "'");
    }
    if (size < 0) {
      throw new IllegalArgumentException("DatasetFile " + name + ": size must be >= 0 but was " + size);
    }
    sha256 = sha256.toLowerCase(Locale.ROOT);
    if (!sha256.matches("[0-9a-f]{64}")) {
      throw new IllegalArgumentException("DatasetFile " + name + ": sha256 must be 64 hex digits but was '" + sha256 + "'");
    }
  }

  /** The name the public mirrors serve this file under: the same name with {@code .gz} added. */
  public String gzipName() {
    return name + ".gz";
  }
}
