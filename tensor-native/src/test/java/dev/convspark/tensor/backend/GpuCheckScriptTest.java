package dev.convspark.tensor.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** {@code gpu-check.sh all}'s budget: refused when not a number, and parts it has no time for are named, not run. */
class GpuCheckScriptTest {

  private static String[] run(String... args) throws IOException, InterruptedException {
    String[] cmd = new String[args.length + 2];
    cmd[0] = "bash";
    cmd[1] = Path.of("gpu-check.sh").toAbsolutePath().toString();
    System.arraycopy(args, 0, cmd, 2, args.length);
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(p.waitFor(60, TimeUnit.SECONDS), "gpu-check.sh did not end");
    return new String[] {String.valueOf(p.exitValue()), out};
  }

  @Test
  void aBudgetThatIsNotANumberIsRefusedNamingTheOption() throws IOException, InterruptedException {
    String[] r = run("all", "--budget", "soon");
    assertEquals("2", r[0], r[1]);
    assertTrue(r[1].contains("--budget must be a whole number of seconds but was 'soon'"), r[1]);
  }

  @Test
  void partsThatTheBudgetLeavesNoTimeForAreNamedAndNotStarted() throws IOException, InterruptedException {
    String[] r = run("all", "--budget", "5");
    assertEquals("0", r[0], r[1]);
    for (String part : new String[] {"run --benchmark-only", "cpu --threads 2,8,16",
        "cpu --threads 16 (CPU_JAVA_OPTS=-Dconvspark.cpu.unrollRows=true)", "recipe", "run --parity-only"}) {
      assertTrue(r[1].contains("== gpu-check all: '" + part + "' not started"), r[1]);
    }
  }
}
