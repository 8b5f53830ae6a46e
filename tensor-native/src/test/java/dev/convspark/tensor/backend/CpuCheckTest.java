package dev.convspark.tensor.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The CPU side of the GPU machine's check: its figures, what it writes for PyTorch's side, its arguments. */
class CpuCheckTest {

  @Test
  void measuresEachThreadCountAndWritesWhatTheReferenceReads() {
    List<CpuCheck.Row> rows = CpuCheck.measure(new int[] {1, 2}, 1);
    assertEquals(2, rows.size());
    for (CpuCheck.Row r : rows) {
      assertTrue(r.train50() > 0 && r.train512() > 0 && r.infer() > 0, r.toString());
      // A training step does a forward pass and more: it cannot outrun inference by much.
      assertTrue(r.train50() < 2 * r.infer(), r.toString());
    }
    Map<String, String> written = new HashMap<>();
    for (String line : CpuCheck.results(rows).split("\n")) {
      String[] kv = line.split(" ");
      assertEquals(2, kv.length, line);
      written.put(kv[0], kv[1]);
    }
    assertEquals("1,2", written.get("threads"));
    assertEquals(7, written.size());
    assertEquals(rows.get(1).train512(), Double.parseDouble(written.get("cpu_train512_2")), 0.05);
    assertEquals(rows.get(0).infer(), Double.parseDouble(written.get("cpu_infer_1")), 0.05);
  }

  @Test
  void threadCountsAreAListOfWholeNumbersAndABadOneIsNamed() {
    assertArrayEquals(new int[] {8, 16}, CpuCheck.threads("8,16"));
    assertArrayEquals(new int[] {1, 2, 4}, CpuCheck.threads("1, 2,4"));
    for (String bad : new String[] {"0", "8,,16", "eight", "-2", "2000"}) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CpuCheck.threads(bad));
      assertTrue(e.getMessage().contains("--threads") && e.getMessage().contains("'" + bad + "'"), e.getMessage());
    }
  }
}
