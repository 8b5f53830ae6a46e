package dev.convspark.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.tensor.io.ModelFile;
import dev.convspark.tensor.io.ModelState;
import dev.convspark.tensor.optim.Adam;
import dev.convspark.tensor.spec.ModelSpec;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.CRC32;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Save and load: bit-exact round trips, and every kind of bad file refused with a clear message. */
class ModelFileTest {

  @TempDir
  Path dir;

  private ModelState trained() {
    Network net = new Network(ModelSpec.parse("in8x8x1-conv3x3x4-relu-pool2-dense10"));
    net.initialize(11);
    Adam adam = new Adam(1e-3f, net.paramCount());
    float[] g = new float[net.paramCount()];
    for (int i = 0; i < g.length; i++) {
      g[i] = (float) Math.sin(i);
    }
    adam.step(net.params(), g);
    return new ModelState(net.spec(), net.params().clone(), adam.state());
  }

  private static byte[] bytes(ModelState s) throws IOException {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ModelFile.write(s, out);
    return out.toByteArray();
  }

  private static ModelState read(byte[] b) throws IOException {
    return ModelFile.read(new ByteArrayInputStream(b), "model.bin");
  }

  @Test
  void roundTripIsBitExactWithOptimizerState() throws IOException {
    ModelState s = trained();
    Path p = dir.resolve("m.bin");
    ModelFile.write(s, p);
    ModelState r = ModelFile.read(p);
    assertEquals(s.spec().text(), r.spec().text());
    assertArrayEquals(s.params(), r.params());
    assertEquals("adam", r.optimizer().name());
    assertEquals(1, r.optimizer().steps());
    assertArrayEquals(s.optimizer().moments()[1], r.optimizer().moments()[1]);
    try (var files = Files.list(dir)) {
      assertEquals(1, files.count(), "no temporary file left beside the model");
    }
  }

  @Test
  void roundTripWithoutOptimizerAndBuiltInName() throws IOException {
    Network net = new Network(ModelSpec.parse("softmax-regression"));
    net.params()[5] = 0.25f;
    ModelState r = read(bytes(new ModelState(net.spec(), net.params(), null)));
    assertEquals("softmax-regression", r.spec().name());
    assertEquals(0.25f, r.params()[5]);
    assertEquals(null, r.optimizer());
  }

  @Test
  void corruptByteIsRefusedByTheChecksum() throws IOException {
    byte[] b = bytes(trained());
    b[b.length / 2] ^= 0x10;
    IOException e = assertThrows(IOException.class, () -> read(b));
    assertTrue(e.getMessage().contains("model.bin") && e.getMessage().contains("checksum"), e.getMessage());
  }

  @Test
  void truncatedFileIsRefused() throws IOException {
    byte[] b = bytes(trained());
    for (int len : new int[] {0, 10, 40, b.length / 2, b.length - 1}) {
      IOException e = assertThrows(IOException.class, () -> read(java.util.Arrays.copyOf(b, len)));
      assertTrue(e.getMessage().contains("model.bin"), e.getMessage());
    }
  }

  @Test
  void wrongMagicAndWrongVersionAreRefused() throws IOException {
    byte[] b = bytes(trained());
    byte[] notModel = b.clone();
    notModel[0] = 'X';
    IOException e = assertThrows(IOException.class, () -> read(notModel));
    assertTrue(e.getMessage().contains("not a convspark model file"), e.getMessage());
    byte[] v2 = b.clone();
    ByteBuffer.wrap(v2).putInt(8, 2);
    e = assertThrows(IOException.class, () -> read(v2));
    assertTrue(e.getMessage().contains("version 2 is not supported"), e.getMessage());
  }

  @Test
  void hostileLengthsAreRefusedBeforeAllocating() throws IOException {
    byte[] b = bytes(trained());
    // Claim a parameter count of two billion and fix up the checksum, as an attacker would.
    int specLen = ByteBuffer.wrap(b).getInt(12);
    int countAt = 16 + specLen;
    ByteBuffer.wrap(b).putInt(countAt, 2_000_000_000);
    CRC32 crc = new CRC32();
    crc.update(b, 0, b.length - 8);
    ByteBuffer.wrap(b).putLong(b.length - 8, crc.getValue());
    IOException e = assertThrows(IOException.class, () -> read(b));
    assertTrue(e.getMessage().contains("2000000000") && e.getMessage().contains("spec needs"), e.getMessage());
  }
}
