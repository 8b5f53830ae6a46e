package dev.convspark.tensor.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The ISA line benchmarks print: what the JVM uses, and AVX-512 where the CPU has it and the JVM leaves it off. */
class CpuDescriptionTest {

  @TempDir
  Path dir;

  @Test
  void aCpuWithAvx512UnderAJvmUsingAvx2IsToldHowToTurnItOn() throws IOException {
    Path cpuinfo = dir.resolve("cpuinfo");
    // Two processors, as Linux writes them; the first flags line is read.
    Files.writeString(cpuinfo, "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz\n"
        + "flags\t\t: fpu vme sse sse2 avx avx2 fma avx512f avx512dq avx512bw avx512vl\n\n"
        + "processor\t: 1\nflags\t\t: fpu vme sse sse2 avx avx2 fma avx512f avx512dq avx512bw avx512vl\n");
    Set<String> flags = FastKernels.cpuFlags(cpuinfo.toString());
    assertTrue(flags.contains("avx512f") && flags.contains("avx2"), flags.toString());
    assertEquals(", the CPU also has avx512 (off in this JVM: -XX:UseAVX=3 turns it on)",
        FastKernels.unusedIsa(flags, 8));
    assertEquals("", FastKernels.unusedIsa(flags, 16), "nothing to say when the JVM uses AVX-512");
  }

  @Test
  void noNoteWithoutAvx512OrWithoutACpuinfo() {
    assertEquals("", FastKernels.unusedIsa(Set.of("avx", "avx2", "fma"), 8));
    Set<String> none = FastKernels.cpuFlags(dir.resolve("missing").toString());
    assertTrue(none.isEmpty());
    assertEquals("", FastKernels.unusedIsa(none, 8));
  }

  @Test
  void theLogWarnsOnlyWhenTheJvmLeftAvx512OffByItself() {
    Set<String> avx512 = Set.of("avx", "avx2", "fma", "avx512f");
    String w = FastKernels.avx512OffWarning(avx512, 8, "DEFAULT");
    assertTrue(w != null && w.contains("has AVX-512") && w.contains("-XX:UseAVX=3")
        && w.contains("spark.executor.extraJavaOptions") && w.contains("--isa avx2"), w);
    // Set on purpose (the command line, JAVA_TOOL_OPTIONS) or unknown: nothing to say.
    assertNull(FastKernels.avx512OffWarning(avx512, 8, "VM_CREATION"));
    assertNull(FastKernels.avx512OffWarning(avx512, 8, "ENVIRON_VAR"));
    assertNull(FastKernels.avx512OffWarning(avx512, 8, "unknown"));
    assertNull(FastKernels.avx512OffWarning(avx512, 16, "DEFAULT"), "AVX-512 in use");
    assertNull(FastKernels.avx512OffWarning(Set.of("avx", "avx2", "fma"), 8, "DEFAULT"), "no AVX-512 to use");
  }

  @Test
  void thisJvmsUseAvxOriginIsRead() {
    // Maven's second test execution sets -XX:UseAVX=2 on the command line, its third
    // -XX:MaxVectorSize=16; the first leaves both.
    boolean set = java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments().stream()
        .anyMatch(a -> a.startsWith("-XX:UseAVX=") || a.startsWith("-XX:MaxVectorSize="));
    String origin = FastKernels.useAvxOrigin();
    if (set) {
      assertTrue(origin.equals("VM_CREATION") || origin.equals("ENVIRON_VAR"), origin);
    } else {
      assertEquals("DEFAULT", origin);
    }
    if (set) {
      assertNull(FastKernels.avx512OffWarning(), "the vector width set on purpose: no warning");
    } else if (FastKernels.vectorLength() >= 16) {
      assertNull(FastKernels.avx512OffWarning(), "AVX-512 in use: no warning");
    }
  }

  @Test
  void theLineNamesTheIsaInUseAndTheBlocking() {
    String line = FastKernels.describe();
    assertTrue(line.startsWith(FastKernels.isa()), line);
    assertTrue(line.endsWith("(" + FastKernels.blocking() + ")"), line);
  }
}
