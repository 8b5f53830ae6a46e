package dev.convspark.tensor.io;

import dev.convspark.tensor.optim.OptimizerState;
import dev.convspark.tensor.spec.ModelSpec;
import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.zip.CRC32;

/**
 * The engine's binary model format, version 1. Big-endian:
 * <pre>
 *   8 bytes  magic "CSPKMODL"
 *   int      format version (1)
 *   int      length of the spec string, then its UTF-8 bytes (the built-in name or text form)
 *   int      parameter count, then that many floats
 *   byte     1 when optimizer state follows, else 0
 *     int + UTF-8   optimizer name
 *     float         learning rate
 *     long          steps taken
 *     int           number of moment arrays, each of parameter-count floats
 *   long     CRC-32 of every byte before it
 * </pre>
 * Reading checks every length against the spec and the bytes that remain before allocating, and
 * the checksum before trusting anything, so a truncated, corrupt or hostile file is refused with
 * a message that says what was wrong. No Java serialization is involved.
 */
public final class ModelFile {

  /** The 8-byte magic at the start of every model file. */
  public static final byte[] MAGIC = "CSPKMODL".getBytes(StandardCharsets.US_ASCII);
  /** The format version this code writes and reads. */
  public static final int VERSION = 1;
  /** Files above this size are refused before reading: 2 GiB (a byte array's limit). */
  static final long MAX_BYTES = Integer.MAX_VALUE - 8;
  private static final int MAX_STRING = 1 << 16;

  private ModelFile() {
  }

  /** Writes {@code state} to {@code out} (which is not closed). */
  public static void write(ModelState state, OutputStream out) throws IOException {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream(16 + state.params().length * 4);
    DataOutputStream d = new DataOutputStream(bytes);
    d.write(MAGIC);
    d.writeInt(VERSION);
    writeString(d, state.spec().specString());
    writeFloats(d, state.params());
    OptimizerState o = state.optimizer();
    d.writeByte(o == null ? 0 : 1);
    if (o != null) {
      writeString(d, o.name());
      d.writeFloat(o.learningRate());
      d.writeLong(o.steps());
      d.writeInt(o.moments().length);
      for (float[] m : o.moments()) {
        writeFloats(d, m);
      }
    }
    d.flush();
    CRC32 crc = new CRC32();
    crc.update(bytes.toByteArray());
    d.writeLong(crc.getValue());
    d.flush();
    bytes.writeTo(out);
  }

  /** Writes {@code state} to {@code path} atomically: a temporary file, then a rename. */
  public static void write(ModelState state, Path path) throws IOException {
    Path dir = path.toAbsolutePath().getParent();
    Files.createDirectories(dir);
    Path tmp = Files.createTempFile(dir, "." + path.getFileName(), ".tmp");
    try {
      try (OutputStream out = Files.newOutputStream(tmp)) {
        write(state, out);
      }
      Files.move(tmp, path, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    } finally {
      Files.deleteIfExists(tmp);
    }
  }

  /** Reads a model file from {@code path}. */
  public static ModelState read(Path path) throws IOException {
    long size = Files.size(path);
    if (size > MAX_BYTES) {
      throw new IOException(path + ": " + size + " bytes is larger than any model file can be");
    }
    try (InputStream in = Files.newInputStream(path)) {
      return read(in, path.toString());
    }
  }

  /**
   * Reads a model file from {@code in} (not closed); {@code source} names it in error messages.
   *
   * @throws IOException naming the source and what was wrong
   */
  public static ModelState read(InputStream in, String source) throws IOException {
    byte[] all = in.readNBytes((int) MAX_BYTES);
    if (all.length < MAGIC.length + 4 + 8) {
      throw new IOException(source + ": not a convspark model file (only " + all.length + " bytes)");
    }
    ByteBuffer b = ByteBuffer.wrap(all);
    byte[] magic = new byte[MAGIC.length];
    b.get(magic);
    if (!java.util.Arrays.equals(magic, MAGIC)) {
      throw new IOException(source + ": not a convspark model file (wrong magic bytes)");
    }
    int version = b.getInt();
    if (version != VERSION) {
      throw new IOException(source + ": model file format version " + version + " is not supported (this build reads version "
          + VERSION + ")");
    }
    CRC32 crc = new CRC32();
    crc.update(all, 0, all.length - 8);
    long stored = ByteBuffer.wrap(all, all.length - 8, 8).getLong();
    if (stored != crc.getValue()) {
      throw new IOException(source + ": model file is corrupt or truncated (checksum mismatch)");
    }
    ByteBuffer body = ByteBuffer.wrap(all, 0, all.length - 8);
    body.position(MAGIC.length + 4);
    try {
      ModelSpec spec;
      String specText = readString(body, source, "spec");
      try {
        spec = ModelSpec.parse(specText);
      } catch (IllegalArgumentException e) {
        throw new IOException(source + ": the model spec in the file is invalid: " + e.getMessage(), e);
      }
      long expected = spec.paramCount();
      float[] params = readFloats(body, expected, source, "parameters");
      OptimizerState opt = null;
      byte hasOpt = body.get();
      if (hasOpt == 1) {
        String name = readString(body, source, "optimizer name");
        float lr = body.getFloat();
        long steps = body.getLong();
        int count = body.getInt();
        if (count < 0 || count > 2) {
          throw new IOException(source + ": optimizer state has " + count + " moment arrays (expected 0 to 2)");
        }
        float[][] moments = new float[count][];
        for (int i = 0; i < count; i++) {
          moments[i] = readFloats(body, expected, source, "optimizer moments");
        }
        opt = new OptimizerState(name, lr, steps, moments);
      } else if (hasOpt != 0) {
        throw new IOException(source + ": bad optimizer flag " + hasOpt);
      }
      if (body.hasRemaining()) {
        throw new IOException(source + ": " + body.remaining() + " unexpected bytes after the model");
      }
      return new ModelState(spec, params, opt);
    } catch (BufferUnderflowException e) {
      throw new IOException(source + ": model file is truncated", e);
    }
  }

  private static void writeString(DataOutputStream d, String s) throws IOException {
    byte[] b = s.getBytes(StandardCharsets.UTF_8);
    d.writeInt(b.length);
    d.write(b);
  }

  private static void writeFloats(DataOutputStream d, float[] a) throws IOException {
    d.writeInt(a.length);
    ByteBuffer buf = ByteBuffer.allocate(a.length * 4);
    buf.asFloatBuffer().put(a);
    d.write(buf.array());
  }

  private static String readString(ByteBuffer b, String source, String what) throws IOException {
    int len = b.getInt();
    if (len < 0 || len > MAX_STRING || len > b.remaining()) {
      throw new IOException(source + ": " + what + " length " + len + " is impossible (" + b.remaining() + " bytes remain)");
    }
    byte[] s = new byte[len];
    b.get(s);
    return new String(s, StandardCharsets.UTF_8);
  }

  private static float[] readFloats(ByteBuffer b, long expected, String source, String what) throws IOException {
    int len = b.getInt();
    if (len != expected) {
      throw new IOException(source + ": " + what + " hold " + len + " floats but the spec needs " + expected);
    }
    if ((long) len * 4 > b.remaining()) {
      throw new IOException(source + ": model file is truncated (" + what + " need " + (long) len * 4
          + " bytes, " + b.remaining() + " remain)");
    }
    float[] a = new float[len];
    b.asFloatBuffer().get(a);
    b.position(b.position() + len * 4);
    return a;
  }
}
