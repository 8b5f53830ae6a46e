package dev.convspark.datasets.idx;

import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.GZIPOutputStream;

/** Writes IDX files, raw or gzip-compressed. */
public final class IdxWriter {

  private IdxWriter() {
  }

  /**
   * Writes a header and its data (big-endian element bytes, exactly {@code header.dataBytes()} of
   * them) to {@code path}.
   *
   * @param gzip compress with gzip
   */
  public static void write(Path path, IdxHeader header, byte[] data, boolean gzip) throws IOException {
    if (data.length != header.dataBytes()) {
      throw new IllegalArgumentException("IDX header " + header + " needs " + header.dataBytes()
          + " data bytes but " + data.length + " were given");
    }
    try (OutputStream raw = Files.newOutputStream(path);
         OutputStream out = new BufferedOutputStream(gzip ? new GZIPOutputStream(raw, 1 << 16) : raw, 1 << 16)) {
      header.write(out);
      out.write(data);
    }
  }
}
