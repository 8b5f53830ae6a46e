package dev.convspark.tensor.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
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
  void theLineNamesTheIsaInUseAndTheBlocking() {
    String line = FastKernels.describe();
    assertTrue(line.startsWith(FastKernels.isa()), line);
    assertTrue(line.endsWith("(" + FastKernels.blocking() + ")"), line);
  }
}
