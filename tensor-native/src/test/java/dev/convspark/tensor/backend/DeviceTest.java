package dev.convspark.tensor.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Device settings, the fallback to the CPU, and the committed PTX (none of which needs a GPU). */
class DeviceTest {

  @TempDir
  Path tmp;

  @Test
  void deviceSettingsParseAndBadOnesNameWhatIsAccepted() {
    assertEquals(Device.AUTO, Device.parse("auto"));
    assertEquals(Device.CPU, Device.parse(" CPU "));
    assertEquals(new Device(Device.Kind.GPU, -1), Device.parse("gpu"));
    assertEquals(new Device(Device.Kind.GPU, 3), Device.parse("GPU:3"));
    assertEquals("gpu:3", Device.parse("gpu:3").toString());
    assertEquals("gpu:2", Device.parse("gpu").withDefaultOrdinal(2).toString());
    assertEquals("gpu:1", Device.parse("gpu:1").withDefaultOrdinal(2).toString());
    assertEquals(Device.CPU, Device.CPU.withDefaultOrdinal(2));
    for (String bad : new String[] {"", "tpu", "gpu:", "gpu:-1", "gpu:x", "cuda"}) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Device.parse(bad));
      assertEquals("device must be auto, cpu, gpu or gpu:N (N >= 0) but was '" + bad + "'", e.getMessage());
    }
  }

  private static String noGpuReason() {
    try (CudaBackend b = CudaBackend.create(0)) {
      return null;
    } catch (IllegalStateException e) {
      return e.getMessage();
    }
  }

  @Test
  void withoutAGpuAutoFallsBackToTheCpuAndGpuFailsSayingWhy() {
    String reason = noGpuReason();
    Assumptions.assumeTrue(reason != null, "a GPU is present here: the fallback path is not exercised");
    try (Backend b = Backends.open(Device.AUTO, 2)) {
      assertTrue(b instanceof CpuBackend, b.describe());
      assertTrue(b.describe().startsWith("cpu (2 threads"), b.describe());
    }
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> Backends.open(Device.parse("gpu"), 2));
    assertTrue(e.getMessage().startsWith("device=gpu: "), "the error names the setting: " + e.getMessage());
    assertTrue(e.getMessage().contains("libcuda.so.1") || e.getMessage().contains("no GPU")
        || e.getMessage().contains("CUDA driver"), e.getMessage());
    // A second attempt fails the same clear way (the JVM's linker state after the first failure).
    IllegalStateException again = assertThrows(IllegalStateException.class, () -> CudaBackend.create(0));
    assertTrue(again.getMessage().length() > 10, again.getMessage());
    try (Backend b = Backends.open(Device.CPU, 1)) {
      assertTrue(b instanceof CpuBackend);
    }
  }

  @Test
  void theCommittedPtxIsWhatTheKernelSourceGives() throws IOException, InterruptedException {
    Path script = Path.of(System.getProperty("convspark.project.dir", ".")).resolve("build-ptx.sh");
    if (!Files.exists(script)) {
      script = Path.of("tensor-native", "build-ptx.sh");
    }
    boolean nvcc = new ProcessBuilder("sh", "-c", "command -v nvcc").start().waitFor() == 0;
    Assumptions.assumeTrue(nvcc, "nvcc is not installed here: the committed PTX is not rebuilt and compared");
    Process v = new ProcessBuilder("nvcc", "--version").redirectErrorStream(true).start();
    String local = new String(v.getInputStream().readAllBytes()).lines()
        .filter(l -> l.startsWith("Cuda compilation tools")).findFirst().orElse("unknown nvcc");
    v.waitFor();
    String committedText = new String(CudaBackend.ptx(), java.nio.charset.StandardCharsets.US_ASCII);
    Assumptions.assumeTrue(committedText.contains("// " + local), "the committed PTX was built by another nvcc than this"
        + " one (" + local + "): not compared, since another release may generate other code");
    Process p = new ProcessBuilder("bash", script.toString(), tmp.toString()).redirectErrorStream(true).start();
    String log = new String(p.getInputStream().readAllBytes());
    assertTrue(p.waitFor(5, TimeUnit.MINUTES), "build-ptx.sh ran over 5 minutes");
    assertEquals(0, p.exitValue(), log);
    for (String resource : new String[] {CudaBackend.PTX, CudaBackend.PTX_TF32}) {
      byte[] committed = CudaBackend.ptx(resource);
      String file = resource.substring(resource.lastIndexOf('/') + 1);
      byte[] fresh = Files.readAllBytes(tmp.resolve(file));
      assertArrayEquals(fresh, java.util.Arrays.copyOf(committed, committed.length - 1),
          "src/main/resources" + resource + " is stale: run tensor-native/build-ptx.sh");
    }
    String text = new String(Files.readAllBytes(tmp.resolve("convspark.ptx")), java.nio.charset.StandardCharsets.US_ASCII);
    assertTrue(text.contains(".version 8.0") && text.contains(".target sm_75"), "loads on CUDA 12 and 13 drivers");
    String tf32 = new String(Files.readAllBytes(tmp.resolve("convspark_tf32.ptx")), java.nio.charset.StandardCharsets.US_ASCII);
    assertTrue(tf32.contains(".version 8.0") && tf32.contains(".target sm_80") && tf32.contains("wmma.mma.sync")
        && tf32.contains(".entry conv_forward_tf32"), "TF32 on the tensor cores of 8.0 and newer");
    assertTrue(!text.contains("wmma"), "no WMMA in the PTX every GPU loads");
  }

  @Test
  void theOldestGpuAcceptedIsTheOneTheCommittedPtxTargets() {
    String ptx = new String(CudaBackend.ptx(CudaBackend.PTX), java.nio.charset.StandardCharsets.US_ASCII);
    assertTrue(ptx.contains(".target sm_" + CudaBackend.MIN_CAPABILITY + "\n"),
        "CudaBackend.MIN_CAPABILITY (" + CudaBackend.MIN_CAPABILITY + ") against the PTX's .target");
  }
}
