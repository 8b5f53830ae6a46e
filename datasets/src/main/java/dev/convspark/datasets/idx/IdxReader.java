package dev.convspark.datasets.idx;

import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.zip.GZIPInputStream;

/**
 * Streams the records of an IDX file, raw or gzip-compressed (recognised by its content, not its
 * name). The header is validated when the reader opens; a raw file's length is checked against
 * the header then, and a compressed file's when its end is reached, so a file shorter or longer
 * than its header says is refused before any record of it is used.
 */
public final class IdxReader implements AutoCloseable {

  private final String source;
  private final IdxHeader header;
  private final InputStream in;
  private final boolean compressed;
  private long recordsLeft;
  /** Whether this reader's range ends where the file's records end (then nothing may follow). */
  private boolean toEnd;

  private IdxReader(String source, IdxHeader header, InputStream in, boolean compressed, long recordsLeft) {
    this.source = source;
    this.header = header;
    this.in = in;
    this.compressed = compressed;
    this.recordsLeft = recordsLeft;
  }

  /** True when the file starts with the gzip magic bytes. */
  public static boolean isGzip(IdxSource file) throws IOException {
    try (InputStream in = file.open(0)) {
      return in.read() == 0x1f && in.read() == 0x8b;
    }
  }

  /** Reads and validates only the header of {@code path} (checking the length of a raw file). */
  public static IdxHeader readHeader(Path path) throws IOException {
    try (IdxReader r = open(path)) {
      return r.header();
    }
  }

  /** Opens {@code path} at its first record. */
  public static IdxReader open(Path path) throws IOException {
    return open(IdxSource.of(path), 0, -1);
  }

  /**
   * Opens {@code file} at record {@code first}, to read at most {@code count} records ({@code -1}:
   * to the end). A raw file seeks straight there; a compressed one is decompressed up to it.
   */
  public static IdxReader open(IdxSource file, long first, long count) throws IOException {
    String source = file.name();
    boolean gz = isGzip(file);
    InputStream in = new BufferedInputStream(gz ? new GZIPInputStream(file.open(0), 1 << 16) : file.open(0), 1 << 16);
    try {
      IdxHeader h = IdxHeader.read(in, source);
      if (!gz) {
        long expected = h.headerBytes() + h.dataBytes();
        long actual = file.length();
        if (actual < expected) {
          throw new IdxFormatException(source, "file is truncated: the header " + h + " needs " + expected
              + " bytes but the file has " + actual);
        }
        if (actual > expected) {
          throw new IdxFormatException(source, "file is longer than its header says: " + h + " needs " + expected
              + " bytes but the file has " + actual);
        }
      }
      if (first < 0 || first > h.count()) {
        throw new IllegalArgumentException(source + ": first record " + first + " is outside [0, " + h.count() + "]");
      }
      long left = count < 0 ? h.count() - first : Math.min(count, h.count() - first);
      if (first > 0 && !gz) {
        in.close();
        in = new BufferedInputStream(file.open(h.headerBytes() + first * h.recordBytes()), 1 << 16);
        return new IdxReader(source, h, in, false, left);
      }
      IdxReader r = new IdxReader(source, h, in, gz, left);
      r.toEnd = first + left == h.count();
      r.skipRecords(first);
      return r;
    } catch (IOException | RuntimeException e) {
      in.close();
      throw e;
    }
  }

  /**
   * Checks a whole file: the header, and that the data is exactly as long as the header says.
   * Cheap for a raw file (its length); a compressed file is decompressed to its end.
   *
   * @return the header
   */
  public static IdxHeader validate(IdxSource file) throws IOException {
    try (IdxReader r = open(file, 0, -1)) {
      if (r.compressed) {
        r.skipRecords(r.recordsLeft);
        r.recordsLeft = 0;
        r.checkNothingAfter();
      }
      return r.header();
    }
  }

  private void skipRecords(long n) throws IOException {
    long bytes = n * header.recordBytes();
    if (bytes == 0) {
      return;
    }
    while (bytes > 0) {
      long k = in.skip(bytes);
      if (k <= 0) {
        if (in.read() < 0) {
          throw truncated();
        }
        k = 1;
      }
      bytes -= k;
    }
  }

  /** The file's header. */
  public IdxHeader header() {
    return header;
  }

  /** The file's path as given, for messages. */
  public String source() {
    return source;
  }

  /** Records this reader has yet to return. */
  public long remaining() {
    return recordsLeft;
  }

  /**
   * Reads up to {@code max} whole records into {@code dst} (big-endian element bytes, as in the
   * file) and returns how many were read: 0 only at the end of this reader's range.
   */
  public int readRecords(byte[] dst, int max) throws IOException {
    int rb = Math.toIntExact(header.recordBytes());
    int n = (int) Math.min(Math.min(max, recordsLeft), rb == 0 ? max : dst.length / rb);
    int bytes = n * rb;
    int off = 0;
    while (off < bytes) {
      int k = in.read(dst, off, bytes - off);
      if (k < 0) {
        throw truncated();
      }
      off += k;
    }
    recordsLeft -= n;
    if (recordsLeft == 0 && compressed && n > 0 && toEnd) {
      checkNothingAfter();
    }
    return n;
  }

  private void checkNothingAfter() throws IOException {
    if (in.read() >= 0) {
      throw new IdxFormatException(source, "file is longer than its header says: data continues after record "
          + header.count() + " of " + header);
    }
  }

  private IdxFormatException truncated() {
    return new IdxFormatException(source, "file is truncated: it ends before record " + (header.count() - recordsLeft)
        + " of the " + header.count() + " its header " + header + " declares");
  }

  /** Reads every remaining record; the whole range must fit in one array. */
  public byte[] readAll() throws IOException {
    long bytes = recordsLeft * header.recordBytes();
    if (bytes > Integer.MAX_VALUE - 8) {
      throw new IOException(source + ": " + bytes + " bytes do not fit in one array; read it in parts");
    }
    byte[] all = new byte[(int) bytes];
    int rb = (int) header.recordBytes();
    int off = 0;
    byte[] chunk = new byte[Math.max(rb, 1 << 16) / Math.max(rb, 1) * Math.max(rb, 1)];
    while (recordsLeft > 0) {
      int n = readRecords(chunk, Integer.MAX_VALUE);
      if (n == 0) {
        break;
      }
      System.arraycopy(chunk, 0, all, off, n * rb);
      off += n * rb;
    }
    return all;
  }

  /** Element {@code i} of big-endian {@code data} of type {@code t}, as a double. */
  public static double element(ByteBuffer data, IdxType t, int i) {
    return switch (t) {
      case UNSIGNED_BYTE -> data.get(i) & 0xff;
      case BYTE -> data.get(i);
      case SHORT -> data.getShort(i * 2);
      case INT -> data.getInt(i * 4);
      case FLOAT -> data.getFloat(i * 4);
      case DOUBLE -> data.getDouble(i * 8);
    };
  }

  @Override
  public void close() throws IOException {
    in.close();
  }

}
