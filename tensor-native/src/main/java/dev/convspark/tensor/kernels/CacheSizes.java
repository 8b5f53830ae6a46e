package dev.convspark.tensor.kernels;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * The data caches of the CPU the JVM runs on, as the operating system reports them, used to size
 * the matrix multiply's blocks. Where they cannot be read (not Linux, a container hiding
 * {@code /sys}), a cache of common size is assumed: 32 KB L1 and 512 KB L2 per core.
 */
public record CacheSizes(int l1Bytes, int l2Bytes, String source) {

  static final int DEFAULT_L1 = 32 * 1024;
  static final int DEFAULT_L2 = 512 * 1024;
  private static final CacheSizes LOCAL = read(Path.of("/sys/devices/system/cpu/cpu0/cache"));

  /** This machine's caches, read once. */
  public static CacheSizes local() {
    return LOCAL;
  }

  /**
   * Reads each {@code indexN} folder's {@code level}, {@code type} and {@code size} under a Linux cache folder; the
   * defaults for whatever is missing or unreadable.
   */
  static CacheSizes read(Path dir) {
    int l1 = 0;
    int l2 = 0;
    for (int i = 0; i < 8; i++) {
      Path index = dir.resolve("index" + i);
      try {
        String type = Files.readString(index.resolve("type")).trim();
        int level = Integer.parseInt(Files.readString(index.resolve("level")).trim());
        int size = parseSize(Files.readString(index.resolve("size")).trim());
        if (level == 1 && !type.equals("Instruction")) {
          l1 = size;
        } else if (level == 2 && !type.equals("Instruction")) {
          l2 = size;
        }
      } catch (IOException | RuntimeException e) {
        // No such index, or one we cannot read: the defaults stand in below.
      }
    }
    boolean found = l1 > 0 && l2 > 0;
    return new CacheSizes(l1 > 0 ? l1 : DEFAULT_L1, l2 > 0 ? l2 : DEFAULT_L2, found ? dir.toString() : "default");
  }

  /** "48K", "2048K", "1M" or a plain byte count, as sysfs writes sizes. */
  static int parseSize(String s) {
    String t = s.toUpperCase(Locale.ROOT);
    int scale = 1;
    if (t.endsWith("K")) {
      scale = 1024;
    } else if (t.endsWith("M")) {
      scale = 1024 * 1024;
    }
    String digits = scale == 1 ? t : t.substring(0, t.length() - 1);
    return Math.multiplyExact(Integer.parseInt(digits), scale);
  }

  /**
   * The depth of a multiply slice: a packed B panel of {@code nr} floats a row takes half of L1,
   * the rest left to A's rows and C's tile, but the slice is at least {@value #MIN_DEPTH} deep. A
   * multiple of 16, up to 512.
   */
  public int depthFor(int nr) {
    int kc = l1Bytes / 2 / (nr * Float.BYTES) / 16 * 16;
    return Math.max(MIN_DEPTH, Math.min(512, kc));
  }

  /**
   * The shallowest slice. Every slice reads and writes each of C's tiles once more, and below this
   * depth that costs more than a B panel that no longer stays in L1: with 512-bit vectors (32-float
   * panels) half of a 32 KB L1 gives 128, and the 2048^3 multiply on 2 threads ran 165-184
   * GFLOP/s at depth 128 against 178-191 at 256 and 183-192 at 384 (four alternating runs each,
   * AMD EPYC with AVX-512, 1 MB L2; a 2048^3 loop outside the repository), the B panel then coming from L2; deep-mnist's training step
   * was the same at the three depths. With AVX2's 16-float panels half of L1 already gives 256.
   */
  static final int MIN_DEPTH = 256;

  /**
   * Rows of a multiply block: its packed A ({@code rows x kc} floats) takes half of L2. A multiple
   * of {@code mr}, from {@code 4 mr} to {@code 96 mr}.
   */
  public int rowsFor(int kc, int mr) {
    int rows = l2Bytes / 2 / (kc * Float.BYTES) / mr * mr;
    return Math.max(4 * mr, Math.min(96 * mr, rows));
  }

  @Override
  public String toString() {
    return String.format(Locale.ROOT, "L1 %d KB, L2 %d KB (%s)", l1Bytes / 1024, l2Bytes / 1024, source);
  }
}
