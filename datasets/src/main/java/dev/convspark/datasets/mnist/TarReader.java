package dev.convspark.datasets.mnist;

import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;

/**
 * Finds one regular file in a POSIX (ustar) tar stream, such as the tarball {@code npm pack}
 * writes, and streams its bytes. Only what is needed for that: no links, no extended headers
 * beyond skipping them.
 */
final class TarReader {

  private static final int BLOCK = 512;

  private TarReader() {
  }

  /**
   * Reads headers from {@code tar} until the entry named {@code wanted}, and returns a stream over
   * exactly that entry's bytes (closing it closes {@code tar}).
   *
   * @throws IOException when the entry is not in the archive or the archive is malformed
   */
  static InputStream entry(InputStream tar, String wanted, String archiveName) throws IOException {
    byte[] header = new byte[BLOCK];
    while (true) {
      if (!readFully(tar, header)) {
        throw new IOException(archiveName + ": no entry '" + wanted + "' (archive ended)");
      }
      if (isZero(header)) {
        throw new IOException(archiveName + ": no entry '" + wanted + "'");
      }
      String name = field(header, 0, 100);
      String prefix = field(header, 345, 155);
      if (!prefix.isEmpty()) {
        name = prefix + "/" + name;
      }
      long size = octal(header, 124, 12, archiveName);
      char type = (char) header[156];
      if ((type == '0' || type == '\0') && name.equals(wanted)) {
        return new Bounded(tar, size);
      }
      skipFully(tar, (size + BLOCK - 1) / BLOCK * BLOCK, archiveName);
    }
  }

  private static String field(byte[] h, int off, int len) {
    int end = off;
    while (end < off + len && h[end] != 0) {
      end++;
    }
    return new String(h, off, end - off, StandardCharsets.UTF_8);
  }

  private static long octal(byte[] h, int off, int len, String archiveName) throws IOException {
    String s = field(h, off, len).trim();
    try {
      return s.isEmpty() ? 0 : Long.parseLong(s, 8);
    } catch (NumberFormatException e) {
      throw new IOException(archiveName + ": malformed tar header, size field '" + s + "'", e);
    }
  }

  private static boolean isZero(byte[] b) {
    for (byte x : b) {
      if (x != 0) {
        return false;
      }
    }
    return true;
  }

  private static boolean readFully(InputStream in, byte[] b) throws IOException {
    int off = 0;
    while (off < b.length) {
      int n = in.read(b, off, b.length - off);
      if (n < 0) {
        if (off == 0) {
          return false;
        }
        throw new IOException("tar stream ended inside a header");
      }
      off += n;
    }
    return true;
  }

  private static void skipFully(InputStream in, long n, String archiveName) throws IOException {
    while (n > 0) {
      long k = in.skip(n);
      if (k <= 0) {
        if (in.read() < 0) {
          throw new IOException(archiveName + ": archive ended inside an entry");
        }
        k = 1;
      }
      n -= k;
    }
  }

  /** A view of the next {@code remaining} bytes of a stream. */
  private static final class Bounded extends FilterInputStream {
    private long remaining;

    Bounded(InputStream in, long remaining) {
      super(in);
      this.remaining = remaining;
    }

    @Override
    public int read() throws IOException {
      if (remaining <= 0) {
        return -1;
      }
      int b = in.read();
      if (b >= 0) {
        remaining--;
      }
      return b;
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
      if (remaining <= 0) {
        return -1;
      }
      int n = in.read(b, off, (int) Math.min(len, remaining));
      if (n > 0) {
        remaining -= n;
      }
      return n;
    }
  }
}
