package dev.convspark.tensor.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The cache sizes the multiply's blocks are cut to, and the blocks themselves. */
class CacheSizesTest {

  private static void index(Path dir, int i, int level, String type, String size) throws IOException {
    Path d = Files.createDirectories(dir.resolve("index" + i));
    Files.writeString(d.resolve("level"), level + "\n");
    Files.writeString(d.resolve("type"), type + "\n");
    Files.writeString(d.resolve("size"), size + "\n");
  }

  @Test
  void readsTheDataCachesAsLinuxListsThem(@TempDir Path dir) throws IOException {
    index(dir, 0, 1, "Data", "48K");
    index(dir, 1, 1, "Instruction", "32K");
    index(dir, 2, 2, "Unified", "2048K");
    index(dir, 3, 3, "Unified", "105M");
    CacheSizes c = CacheSizes.read(dir);
    assertEquals(48 * 1024, c.l1Bytes());
    assertEquals(2048 * 1024, c.l2Bytes());
    assertEquals(dir.toString(), c.source());
  }

  @Test
  void fallsBackToCommonSizesWhereNothingCanBeRead(@TempDir Path dir) throws IOException {
    index(dir, 0, 1, "Data", "not a size");
    CacheSizes c = CacheSizes.read(dir);
    assertEquals(CacheSizes.DEFAULT_L1, c.l1Bytes());
    assertEquals(CacheSizes.DEFAULT_L2, c.l2Bytes());
    assertEquals("default", c.source());
  }

  @Test
  void blocksFillHalfOfEachCacheWithinBounds() {
    CacheSizes c = new CacheSizes(32 * 1024, 1024 * 1024, "test");
    // AVX2: 16-float panels; AVX-512: 32-float panels.
    assertEquals(256, c.depthFor(16));
    // Half of L1 would be 128 deep for 32-float panels: the floor of 256 stands.
    assertEquals(256, c.depthFor(32));
    assertEquals(510, c.rowsFor(256, 6));
    CacheSizes wide = new CacheSizes(64 * 1024, 2048 * 1024, "test");
    assertEquals(256, wide.depthFor(32));
    assertEquals(512, wide.depthFor(16));
    CacheSizes tiny = new CacheSizes(1024, 4096, "test");
    assertEquals(CacheSizes.MIN_DEPTH, tiny.depthFor(32));
    assertEquals(24, tiny.rowsFor(64, 6));
    CacheSizes huge = new CacheSizes(1 << 30, 1 << 30, "test");
    assertEquals(512, huge.depthFor(16));
    assertEquals(576, huge.rowsFor(512, 6));
  }

  @Test
  void theKernelsUseTheVectorWidthTheBuildAskedFor() {
    // The build's second test run starts the JVM with -XX:UseAVX=2 and its third with
    // -XX:MaxVectorSize=16, and they say so here, so that the AVX2 and 128-bit paths are known to
    // have been the ones tested even on an AVX-512 machine.
    Integer bits = Integer.getInteger("convspark.test.vectorBits");
    int actual = FastKernels.vectorLength() * Float.SIZE;
    if (bits != null) {
      assertEquals(bits.intValue(), actual, "vector width of the kernels");
    }
    assertTrue(actual >= 128, "vectors of " + actual + " bits");
    assertTrue(FastKernels.KC % 16 == 0 && FastKernels.MC % FastKernels.MR == 0, "KC " + FastKernels.KC + ", MC " + FastKernels.MC);
  }
}
