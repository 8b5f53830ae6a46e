package dev.convspark.datasets.idx;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.util.Arrays;

/**
 * The header of an IDX file: two zero bytes, the type code, the number of dimensions, then one
 * big-endian 32-bit size per dimension. The first dimension counts the records; the rest give the
 * shape of one record.
 *
 * @param type the element type
 * @param dims the sizes, first the record count
 */
public record IdxHeader(IdxType type, int[] dims) implements java.io.Serializable {

  /** The most dimensions a header may declare; more is taken as a corrupt file. */
  public static final int MAX_DIMS = 16;

  /** Checks that there is at least one dimension and no size is negative. */
  public IdxHeader {
    if (dims.length < 1 || dims.length > MAX_DIMS) {
      throw new IllegalArgumentException("an IDX header needs 1 to " + MAX_DIMS + " dimensions but got " + dims.length);
    }
    for (int d : dims) {
      if (d < 0) {
        throw new IllegalArgumentException("IDX dimension sizes must be >= 0 but got " + Arrays.toString(dims));
      }
    }
    dims = dims.clone();
  }

  /**
   * Reads and validates a header.
   *
   * @param source names the file in error messages
   * @throws IdxFormatException for a wrong magic number, an unknown type code, a bad dimension
   *                            count, or a header cut short
   */
  public static IdxHeader read(InputStream in, String source) throws IOException {
    DataInputStream d = new DataInputStream(in);
    try {
      int z0 = d.readUnsignedByte();
      int z1 = d.readUnsignedByte();
      int code = d.readUnsignedByte();
      int n = d.readUnsignedByte();
      if (z0 != 0 || z1 != 0) {
        throw new IdxFormatException(source, String.format(
            "not an IDX file: magic number must start with 0x00 0x00 but starts with 0x%02X 0x%02X", z0, z1));
      }
      IdxType type = IdxType.ofCode(code);
      if (type == null) {
        throw new IdxFormatException(source, String.format(
            "unknown IDX type code 0x%02X (expected 0x08, 0x09, 0x0B, 0x0C, 0x0D or 0x0E)", code));
      }
      if (n < 1 || n > MAX_DIMS) {
        throw new IdxFormatException(source, "IDX header declares " + n + " dimensions (expected 1 to " + MAX_DIMS + ")");
      }
      int[] dims = new int[n];
      for (int i = 0; i < n; i++) {
        dims[i] = d.readInt();
        if (dims[i] < 0) {
          throw new IdxFormatException(source, "dimension " + i + " has negative size " + dims[i]);
        }
      }
      return new IdxHeader(type, dims);
    } catch (EOFException e) {
      throw new IdxFormatException(source, "file ends inside the IDX header");
    }
  }

  /** Writes the header. */
  public void write(OutputStream out) throws IOException {
    DataOutputStream d = new DataOutputStream(out);
    d.writeByte(0);
    d.writeByte(0);
    d.writeByte(type.code());
    d.writeByte(dims.length);
    for (int x : dims) {
      d.writeInt(x);
    }
    d.flush();
  }

  /** The sizes, first the record count (a copy). */
  @Override
  public int[] dims() {
    return dims.clone();
  }

  /** Number of records: the first dimension. */
  public int count() {
    return dims[0];
  }

  /** The shape of one record: every dimension after the first (empty for 1-D files). */
  public int[] recordShape() {
    return Arrays.copyOfRange(dims, 1, dims.length);
  }

  /** Elements in one record. */
  public long recordElements() {
    long e = 1;
    for (int i = 1; i < dims.length; i++) {
      e *= dims[i];
    }
    return e;
  }

  /** Bytes in one record. */
  public long recordBytes() {
    return recordElements() * type.bytes();
  }

  /** Bytes of the header itself. */
  public int headerBytes() {
    return 4 + 4 * dims.length;
  }

  /** Bytes of the data that must follow the header. */
  public long dataBytes() {
    return recordBytes() * count();
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof IdxHeader h && h.type == type && Arrays.equals(h.dims, dims);
  }

  @Override
  public int hashCode() {
    return type.hashCode() * 31 + Arrays.hashCode(dims);
  }

  @Override
  public String toString() {
    return type + Arrays.toString(dims);
  }
}
