package dev.convspark.datasets.idx;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The IDX reader and writer: round trips for every type and rank, and every kind of corruption refused. */
class IdxCodecTest {

  @TempDir
  Path dir;

  private static byte[] randomData(IdxHeader h, long seed) {
    byte[] b = new byte[(int) h.dataBytes()];
    new Random(seed).nextBytes(b);
    return b;
  }

  @Test
  void everyTypeAndRankRoundTripsRawAndGzip() throws IOException {
    int[][] shapes = {{7}, {5, 3}, {4, 3, 2}, {3, 2, 2, 3}};
    for (IdxType t : IdxType.values()) {
      for (int[] shape : shapes) {
        for (boolean gz : new boolean[] {false, true}) {
          IdxHeader h = new IdxHeader(t, shape);
          byte[] data = randomData(h, t.ordinal() * 10 + shape.length);
          Path p = dir.resolve(t + "-" + shape.length + (gz ? ".gz" : ""));
          IdxWriter.write(p, h, data, gz);
          assertEquals(gz, IdxReader.isGzip(IdxSource.of(p)));
          try (IdxReader r = IdxReader.open(p)) {
            assertEquals(h, r.header());
            assertArrayEquals(data, r.readAll(), t + " " + Arrays.toString(shape) + " gzip=" + gz);
          }
          // A range in the middle, by seeking (raw) or skipping (gzip).
          try (IdxReader r = IdxReader.open(IdxSource.of(p), 2, 2)) {
            int rb = (int) h.recordBytes();
            int end = Math.min(4, shape[0]);
            assertArrayEquals(Arrays.copyOfRange(data, 2 * rb, end * rb), r.readAll(),
                "records 2 and 3 of " + t + " " + Arrays.toString(shape) + " gzip=" + gz);
          }
        }
      }
    }
  }

  @Test
  void elementsDecodeBigEndian() {
    ByteBuffer b = ByteBuffer.allocate(16).putShort(0, (short) -2).putFloat(4, 1.5f).putDouble(8, -3.25);
    assertEquals(-2, IdxReader.element(b, IdxType.SHORT, 0));
    assertEquals(1.5, IdxReader.element(b, IdxType.FLOAT, 1));
    assertEquals(-3.25, IdxReader.element(b, IdxType.DOUBLE, 1));
    assertEquals(0xff, IdxReader.element(ByteBuffer.wrap(new byte[] {-1}), IdxType.UNSIGNED_BYTE, 0));
  }

  private Path write(String name, byte[] bytes) throws IOException {
    Path p = dir.resolve(name);
    Files.write(p, bytes);
    return p;
  }

  private byte[] validFile() throws IOException {
    Path p = dir.resolve("valid");
    IdxHeader h = new IdxHeader(IdxType.UNSIGNED_BYTE, new int[] {4, 2, 3});
    IdxWriter.write(p, h, randomData(h, 1), false);
    return Files.readAllBytes(p);
  }

  private void assertRefused(Path p, String... fragments) {
    IOException e = assertThrows(IOException.class, () -> {
      try (IdxReader r = IdxReader.open(IdxSource.of(p), 0, -1)) {
        r.readAll();
      }
    });
    assertTrue(e.getMessage().contains(p.toString()), "message names the file: " + e.getMessage());
    for (String f : fragments) {
      assertTrue(e.getMessage().contains(f), "message says '" + f + "': " + e.getMessage());
    }
  }

  @Test
  void wrongMagicIsRefused() throws IOException {
    byte[] b = validFile();
    b[1] = 0x12;
    assertRefused(write("magic", b), "magic number must start with 0x00 0x00");
  }

  @Test
  void unknownTypeCodeIsRefused() throws IOException {
    byte[] b = validFile();
    b[2] = 0x0A;
    assertRefused(write("type", b), "unknown IDX type code 0x0A");
  }

  @Test
  void badDimensionCountIsRefused() throws IOException {
    byte[] b = validFile();
    b[3] = 0;
    assertRefused(write("dims", b), "declares 0 dimensions");
  }

  @Test
  void truncatedAndTooLongFilesAreRefused() throws IOException {
    byte[] b = validFile();
    assertRefused(write("short", Arrays.copyOf(b, b.length - 1)), "truncated", "needs 40 bytes but the file has 39");
    assertRefused(write("long", Arrays.copyOf(b, b.length + 3)), "longer than its header says");
    assertRefused(write("header", Arrays.copyOf(b, 9)), "ends inside the IDX header");
  }

  @Test
  void truncatedAndTooLongGzipFilesAreRefusedWhenValidated() throws IOException {
    IdxHeader h = new IdxHeader(IdxType.FLOAT, new int[] {10, 3});
    byte[] data = randomData(h, 3);
    Path shortGz = dir.resolve("short.gz");
    IdxWriter.write(shortGz, new IdxHeader(IdxType.FLOAT, new int[] {11, 3}), Arrays.copyOf(data, data.length + 12), true);
    // Rewrite with a header that claims more records than the data holds.
    byte[] raw = new byte[data.length];
    System.arraycopy(data, 0, raw, 0, data.length);
    Path claimsMore = dir.resolve("claims-more.gz");
    try (var out = new java.util.zip.GZIPOutputStream(Files.newOutputStream(claimsMore))) {
      new IdxHeader(IdxType.FLOAT, new int[] {12, 3}).write(out);
      out.write(raw);
    }
    IOException e = assertThrows(IOException.class, () -> IdxReader.validate(IdxSource.of(claimsMore)));
    assertTrue(e.getMessage().contains("claims-more.gz") && e.getMessage().contains("truncated"), e.getMessage());
    Path claimsFewer = dir.resolve("claims-fewer.gz");
    try (var out = new java.util.zip.GZIPOutputStream(Files.newOutputStream(claimsFewer))) {
      new IdxHeader(IdxType.FLOAT, new int[] {9, 3}).write(out);
      out.write(raw);
    }
    e = assertThrows(IOException.class, () -> IdxReader.validate(IdxSource.of(claimsFewer)));
    assertTrue(e.getMessage().contains("claims-fewer.gz") && e.getMessage().contains("longer than its header"), e.getMessage());
    assertEquals(11, IdxReader.validate(IdxSource.of(shortGz)).count());
  }
}
