package dev.convspark.datasets.mnist;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/** Checks files on disk against their expected length and SHA-256 digest. */
public final class FileVerifier {

  private FileVerifier() {
  }

  /**
   * Checks {@code path} against {@code expected}. The length is compared first, so a truncated
   * file is reported as such without reading it.
   *
   * @throws IOException when the file exists but cannot be read
   */
  public static FileVerdict verify(Path path, DatasetFile expected) throws IOException {
    if (!Files.isRegularFile(path)) {
      return new FileVerdict(FileVerdict.Status.MISSING, path + ": missing");
    }
    long size = Files.size(path);
    if (size < expected.size()) {
      return new FileVerdict(FileVerdict.Status.TRUNCATED,
          path + ": truncated, expected " + expected.size() + " bytes but found " + size);
    }
    if (size > expected.size()) {
      return new FileVerdict(FileVerdict.Status.TOO_LONG,
          path + ": too long, expected " + expected.size() + " bytes but found " + size);
    }
    String digest = sha256(path);
    if (!digest.equals(expected.sha256())) {
      return new FileVerdict(FileVerdict.Status.CHECKSUM_MISMATCH,
          path + ": SHA-256 mismatch, expected " + expected.sha256() + " but found " + digest);
    }
    return new FileVerdict(FileVerdict.Status.OK, path + ": OK");
  }

  /** The SHA-256 digest of a file's bytes, as 64 lower-case hex digits. */
  public static String sha256(Path path) throws IOException {
    MessageDigest md = newSha256();
    byte[] buf = new byte[1 << 16];
    try (InputStream in = Files.newInputStream(path)) {
      for (int n; (n = in.read(buf)) > 0; ) {
        md.update(buf, 0, n);
      }
    }
    return HexFormat.of().formatHex(md.digest());
  }

  static MessageDigest newSha256() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("this JVM has no SHA-256", e);
    }
  }
}
