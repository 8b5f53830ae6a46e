package dev.convspark.ml.training;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** A checkpoint's history file, with and without validation, read back or refused naming the file. */
class CheckpointHistoryTest {

  private static final double[] LOSS = {2.3, 1.1, 0.7, 0.5, 0.45};
  private static final double[] ACC = {0.1, 0.6, 0.8, 0.85, 0.9};

  @Test
  void aHistoryWithValidationReadsBackExactly() throws IOException {
    Validation.History v = new Validation.History(new int[] {2, 4}, new double[] {0.9, 0.6}, new double[] {0.7, 0.8}, 4,
        false);
    Checkpoints.History h = Checkpoints.readHistory(Checkpoints.historyBytes(5, LOSS, ACC, v), 5, "step-5.history");
    assertArrayEquals(LOSS, h.loss());
    assertArrayEquals(ACC, h.accuracy());
    assertArrayEquals(v.steps(), h.validation().steps());
    assertArrayEquals(v.loss(), h.validation().loss());
    assertArrayEquals(v.accuracy(), h.validation().accuracy());
    Checkpoints.History plain = Checkpoints.readHistory(Checkpoints.historyBytes(5, LOSS, ACC, null), 5, "x");
    assertNull(plain.validation(), "a history written without validation has none");
    assertArrayEquals(LOSS, plain.loss());
  }

  @Test
  void aTruncatedOrCorruptHistoryIsRefusedNamingTheFile() throws IOException {
    Validation.History v = new Validation.History(new int[] {2, 4}, new double[] {0.9, 0.6}, new double[] {0.7, 0.8}, 4,
        false);
    byte[] whole = Checkpoints.historyBytes(5, LOSS, ACC, v);
    IOException cut = assertThrows(IOException.class,
        () -> Checkpoints.readHistory(Arrays.copyOf(whole, whole.length - 9), 5, "dir/step-5.history"));
    assertTrue(cut.getMessage().startsWith("dir/step-5.history: ") && cut.getMessage().contains("bytes"), cut.getMessage());
    byte[] flipped = whole.clone();
    flipped[20] ^= 1;
    IOException crc = assertThrows(IOException.class, () -> Checkpoints.readHistory(flipped, 5, "dir/step-5.history"));
    assertTrue(crc.getMessage().contains("dir/step-5.history") && crc.getMessage().contains("checksum"), crc.getMessage());
    IOException other = assertThrows(IOException.class, () -> Checkpoints.readHistory(whole, 6, "dir/step-6.history"));
    assertTrue(other.getMessage().contains("dir/step-6.history"), other.getMessage());
  }
}
