package dev.convspark.tensor.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** {@code gpu-check.sh all}'s budget: refused when not a number, and parts it has no time for are named, not run. */
class GpuCheckScriptTest {

  /** gpu-check.sh with {@code args}, BENCH_ISA set to {@code isa} (or unset where null): its exit status and output. */
  private static String[] withIsa(String isa, String... args) throws IOException, InterruptedException {
    String[] cmd = new String[args.length + 2];
    cmd[0] = "bash";
    cmd[1] = Path.of("gpu-check.sh").toAbsolutePath().toString();
    System.arraycopy(args, 0, cmd, 2, args.length);
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
    pb.environment().remove("BENCH_ISA");
    if (isa != null) {
      pb.environment().put("BENCH_ISA", isa);
    }
    Process p = pb.start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(p.waitFor(60, TimeUnit.SECONDS), "gpu-check.sh did not end");
    return new String[] {String.valueOf(p.exitValue()), out};
  }

  /** Whether this machine's CPU has AVX-512, as the script reads it. */
  private static boolean cpuHasAvx512() throws IOException {
    Path cpuinfo = Path.of("/proc/cpuinfo");
    return Files.isReadable(cpuinfo) && Files.readString(cpuinfo).matches("(?s).*\\bavx512f\\b.*");
  }

  @Test
  void aBudgetThatIsNotANumberIsRefusedNamingTheOption() throws IOException, InterruptedException {
    String[] r = withIsa(null, "all", "--budget", "soon");
    assertEquals("2", r[0], r[1]);
    assertTrue(r[1].contains("--budget must be a whole number of seconds but was 'soon'"), r[1]);
  }

  @Test
  void partsThatTheBudgetLeavesNoTimeForAreNamedAndNotStarted() throws IOException, InterruptedException {
    String[] r = withIsa(null, "all", "--budget", "5");
    assertEquals("0", r[0], r[1]);
    // The CPU rows on AVX-512 where the CPU has it, both sides, then the AVX2 rows last.
    String isa = cpuHasAvx512() ? "BENCH_ISA=avx512 " : "";
    for (String part : new String[] {"run --benchmark-only", isa + "cpu --threads 2,8,16",
        isa + "CPU_JAVA_OPTS=-Dconvspark.cpu.unrollRows=true cpu --threads 16", "recipe", "run --parity-only"}) {
      assertTrue(r[1].contains("== gpu-check all: '" + part + "' not started"), r[1]);
    }
    assertEquals(cpuHasAvx512(), r[1].contains("'BENCH_ISA=avx2 cpu --threads 2,16' not started"), r[1]);
  }

  @Test
  void anIsaTheCallerSetHoldsForEveryCpuPart() throws IOException, InterruptedException {
    String[] r = withIsa("avx2", "all", "--budget", "5");
    assertEquals("0", r[0], r[1]);
    assertTrue(r[1].contains("'BENCH_ISA=avx2 cpu --threads 2,8,16' not started"), r[1]);
    assertTrue(r[1].contains("'BENCH_ISA=avx2 CPU_JAVA_OPTS=-Dconvspark.cpu.unrollRows=true cpu --threads 16' not started"),
        r[1]);
    assertTrue(!r[1].contains("cpu --threads 2,16"), "no second ISA's rows: " + r[1]);
  }
}
