package dev.convspark.jobs.scaling;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The scaling simulator on a slow link, where the topologies must differ as the wire says. */
class ScalingSimulatorTest {

  private static double get(List<Map<String, Object>> rows, String topology, int workers, String key) {
    return rows.stream().filter(r -> r.get("topology").equals(topology) && r.get("workers").equals(workers))
        .map(r -> ((Number) r.get(key)).doubleValue()).findFirst().orElseThrow();
  }

  @Test
  void onA1GbitLinkFourWorkersOfAStarWaitForItsHubTwiceAsLongAsARing() throws Exception {
    ByteArrayOutputStream text = new ByteArrayOutputStream();
    List<Map<String, Object>> rows = new ScalingSimulator(1, 1, 2, 1, 0)
        .run(List.of(1, 4), List.of(4), List.of("star", "ring"), new PrintStream(text, true, StandardCharsets.UTF_8));
    String table = text.toString(StandardCharsets.UTF_8);
    assertEquals(4, rows.size(), table);
    assertTrue(table.contains("ring") && table.contains("efficiency"), table);
    for (String topology : List.of("star", "ring")) {
      double wire = get(rows, topology, 4, "wire_ms");
      double step = get(rows, topology, 4, "step_ms");
      // The link cap holds: no step beats the time its bytes need on the wire.
      assertTrue(step >= 0.9 * wire, topology + ": step " + step + " ms, wire " + wire + " ms\n" + table);
      assertEquals(get(rows, topology, 1, "step_ms") / step, get(rows, topology, 4, "efficiency"), 1e-9);
    }
    // 13 MB of gradient at 1 Gbit/s: the hub carries 3 x 13 MB each way (315 ms), a ring's worker 1.5 x (157 ms).
    assertTrue(get(rows, "star", 4, "step_ms") > 1.6 * get(rows, "ring", 4, "step_ms"), table);
  }
}
