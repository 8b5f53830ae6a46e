package dev.convspark.tensor.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** A JVM started without the Vector API's module is told which option to add, not handed a NoClassDefFoundError. */
class VectorModuleTest {

  /** Opens a CPU backend and says so: run in a JVM without the module. */
  public static final class Open {
    public static void main(String[] args) {
      try (CpuBackend b = CpuBackend.create(1)) {
        System.out.println("opened " + b.describe());
      } catch (IllegalStateException e) {
        System.out.println("refused: " + e.getMessage());
      }
    }
  }

  @Test
  void theMessageNamesTheModuleAndWhereSparkTakesIt() {
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> CpuBackend.requireVectorApi(false));
    assertTrue(e.getMessage().contains("--add-modules=jdk.incubator.vector")
        && e.getMessage().contains("spark.executor.extraJavaOptions"), e.getMessage());
    CpuBackend.requireVectorApi(true);
  }

  @Test
  void aJvmWithoutTheModuleIsRefusedByName() throws IOException, InterruptedException {
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    for (boolean withModule : new boolean[] {false, true}) {
      List<String> cmd = new java.util.ArrayList<>(List.of(java, "-Xmx256m"));
      if (withModule) {
        cmd.add("--add-modules=jdk.incubator.vector");
      }
      cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), Open.class.getName()));
      Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      assertTrue(p.waitFor(60, TimeUnit.SECONDS), "the JVM did not end");
      assertEquals(0, p.exitValue(), out);
      if (withModule) {
        assertTrue(out.contains("opened cpu (1 thread"), out);
      } else {
        assertTrue(out.contains("refused: the CPU backend needs the JDK's Vector API (module jdk.incubator.vector)"),
            out);
      }
    }
  }
}
