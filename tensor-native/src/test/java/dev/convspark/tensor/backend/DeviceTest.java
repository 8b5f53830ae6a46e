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

  /**
   * The committed PTX as a driver compiles it for a GPU (ptxas, where the CUDA toolkit is here):
   * every kernel assembles for Turing, Ampere and Hopper (the TF32 file from Ampere on) and
   * spills no register to local memory, which would put memory traffic inside the products' k
   * loops. The TF32 forms and {@code conv_weight_grad} are held to 128 registers by their
   * {@code __launch_bounds__} (4 blocks a multiprocessor): ptxas spills before it exceeds them.
   */
  @Test
  void theCommittedPtxAssemblesForTuringAmpereAndHopperWithoutSpilling() throws IOException, InterruptedException {
    boolean ptxas = new ProcessBuilder("sh", "-c", "command -v ptxas").start().waitFor() == 0;
    Assumptions.assumeTrue(ptxas, "ptxas is not installed here: the committed PTX is not assembled");
    for (String resource : new String[] {CudaBackend.PTX, CudaBackend.PTX_TF32}) {
      Path ptx = tmp.resolve(resource.substring(resource.lastIndexOf('/') + 1));
      byte[] text = CudaBackend.ptx(resource);
      Files.write(ptx, java.util.Arrays.copyOf(text, text.length - 1));
      for (String arch : resource.equals(CudaBackend.PTX) ? new String[] {"sm_75", "sm_80", "sm_90"}
          : new String[] {"sm_80", "sm_90"}) {
        Process p = new ProcessBuilder("ptxas", "-arch=" + arch, "-O3", "-v", "-o", tmp.resolve("k.cubin").toString(),
            ptx.toString()).redirectErrorStream(true).start();
        String log = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(2, TimeUnit.MINUTES), "ptxas ran over 2 minutes");
        assertEquals(0, p.exitValue(), ptx.getFileName() + " for " + arch + ":\n" + log);
        long kernels = log.lines().filter(l -> l.contains("Compiling entry function")).count();
        java.util.List<String> spills = log.lines().filter(l -> l.contains("bytes spill stores"))
            .filter(l -> !l.contains(" 0 bytes spill stores, 0 bytes spill loads")).toList();
        assertTrue(kernels >= 16, ptx.getFileName() + " for " + arch + ": " + kernels + " kernels\n" + log);
        assertTrue(spills.isEmpty(), ptx.getFileName() + " for " + arch + " spills: " + spills + "\n" + log);
      }
    }
  }

  @Test
  void theOldestGpuAcceptedIsTheOneTheCommittedPtxTargets() {
    String ptx = new String(CudaBackend.ptx(CudaBackend.PTX), java.nio.charset.StandardCharsets.US_ASCII);
    assertTrue(ptx.contains(".target sm_" + CudaBackend.MIN_CAPABILITY + "\n"),
        "CudaBackend.MIN_CAPABILITY (" + CudaBackend.MIN_CAPABILITY + ") against the PTX's .target");
  }
}
