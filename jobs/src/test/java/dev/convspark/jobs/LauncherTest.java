package dev.convspark.jobs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The launcher's argument handling and its JSON output. */
class LauncherTest {

  @Test
  void usageErrorsExitWithTwo() {
    assertEquals(2, Launcher.run(new String[0]));
    assertEquals(2, Launcher.run(new String[] {"no-such-command"}));
    assertEquals(2, Launcher.run(new String[] {"bench"}));
    assertEquals(2, Launcher.run(new String[] {"bench", "gpu"}));
    assertEquals(2, Launcher.run(new String[] {"fetch-mnist", "--dir"}));
    assertEquals(2, Launcher.run(new String[] {"quickstart", "--steps", "zero"}));
    assertEquals(2, Launcher.run(new String[] {"bench", "engine", "--threads", "0"}));
    assertEquals(2, Launcher.run(new String[] {"bench", "engine", "--threads", "1,two"}));
    assertEquals(2, Launcher.run(new String[] {"quickstart", "--recipe", "quick"}));
    assertEquals(2, Launcher.run(new String[] {"bench", "scaling", "--link-gbps", "0"}));
    assertEquals(2, Launcher.run(new String[] {"bench", "scaling", "--link-gbps", "fast"}));
    assertEquals(2, Launcher.run(new String[] {"bench", "scaling", "--topology", "mesh"}));
    assertEquals(2, Launcher.run(new String[] {"bench", "scaling", "--workers", "0,2"}));
  }

  @Test
  void helpExitsWithZero() {
    assertEquals(0, Launcher.run(new String[] {"quickstart", "--help"}));
    assertEquals(0, Launcher.run(new String[] {"bench", "engine", "--help"}));
    assertEquals(0, Launcher.run(new String[] {"bench", "scaling", "--help"}));
    assertEquals(0, Launcher.run(new String[] {"quickstart", "--help"}));
  }

  @Test
  void flagValuesAreValidatedWithTheFlagName() {
    UsageException e = assertThrows(UsageException.class,
        () -> Args.intValue(new String[] {"--steps", "-5"}, 1, "--steps", 1, 10));
    assertEquals("--steps must be in [1, 10] but was -5", e.getMessage());
    e = assertThrows(UsageException.class, () -> Args.intValue(new String[] {"--steps", "x"}, 1, "--steps", 1, 10));
    assertTrue(e.getMessage().contains("must be an integer but was 'x'"));
  }

  @Test
  void threadListsAreReadInOrderAndEachItemValidated() {
    assertEquals(List.of(1, 2, 16), Args.intList(new String[] {"1, 2,16"}, 0, "--threads", 1, 1024));
    UsageException e = assertThrows(UsageException.class,
        () -> Args.intList(new String[] {"1,,4"}, 0, "--threads", 1, 1024));
    assertEquals("--threads must be an integer but was ''", e.getMessage());
    e = assertThrows(UsageException.class, () -> Args.intList(new String[] {"2,0"}, 0, "--threads", 1, 1024));
    assertEquals("--threads must be in [1, 1024] but was 0", e.getMessage());
  }

  @Test
  void jsonEscapesStringsAndWritesNumbersAndLists() {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("name", "a \"quoted\"\nline");
    m.put("rate", 1234.5);
    m.put("count", 3);
    m.put("all", List.of(1.5, 2.5));
    m.put("nan", Double.NaN);
    m.put("rows", List.of(Map.of("threads", 2)));
    String json = Json.write(m);
    assertTrue(json.contains("\"name\": \"a \\\"quoted\\\"\\nline\""), json);
    assertTrue(json.contains("\"rate\": 1234.50"), json);
    assertTrue(json.contains("\"count\": 3"), json);
    assertTrue(json.contains("\"all\": [1.50000, 2.50000]"), json);
    assertTrue(json.contains("\"nan\": null"), json);
    assertTrue(json.contains("\"rows\": [{\"threads\": 2}]"), json);
  }
}
