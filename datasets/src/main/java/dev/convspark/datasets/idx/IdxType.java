package dev.convspark.datasets.idx;

/** The element types of the IDX format, by their type code (the third byte of the magic number). */
public enum IdxType {
  /** 0x08: unsigned 8-bit integer, as in MNIST. */
  UNSIGNED_BYTE(0x08, 1),
  /** 0x09: signed 8-bit integer. */
  BYTE(0x09, 1),
  /** 0x0B: signed 16-bit integer, big-endian. */
  SHORT(0x0B, 2),
  /** 0x0C: signed 32-bit integer, big-endian. */
  INT(0x0C, 4),
  /** 0x0D: 32-bit IEEE float, big-endian. */
  FLOAT(0x0D, 4),
  /** 0x0E: 64-bit IEEE float, big-endian. */
  DOUBLE(0x0E, 8);

  private final int code;
  private final int bytes;

  IdxType(int code, int bytes) {
    this.code = code;
    this.bytes = bytes;
  }

  /** The type code in the file's magic number. */
  public int code() {
    return code;
  }

  /** Bytes per element. */
  public int bytes() {
    return bytes;
  }

  /** The type of a code, or null when the code is not an IDX type. */
  public static IdxType ofCode(int code) {
    for (IdxType t : values()) {
      if (t.code == code) {
        return t;
      }
    }
    return null;
  }
}
