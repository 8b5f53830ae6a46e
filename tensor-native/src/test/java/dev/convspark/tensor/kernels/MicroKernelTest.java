package dev.convspark.tensor.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import org.junit.jupiter.api.Test;

/** The register-tile kernels against a scalar loop that adds the same terms in the same order. */
class MicroKernelTest {

  @Test
  void theUnrollSwitchTakesTrueOrFalseAndRefusesAnythingElseNamingTheProperty() {
    assertTrue(FastKernels.unrollRows("true"));
    assertFalse(FastKernels.unrollRows("false"));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> FastKernels.unrollRows("yes"));
    assertEquals("convspark.cpu.unrollRows must be true or false but was 'yes'", e.getMessage());
  }

  /**
   * {@link FastKernels#sumLanes} adds in lane order, before the JIT compiles it and after: lanes
   * of mixed magnitudes, whose sum depends on the order (on JDK 25 with AVX2,
   * {@code reduceLanes(ADD)} gave 5.7 once compiled where lane order gives 3.59).
   */
  @Test
  void lanesAreSummedInLaneOrderBeforeAndAfterCompilation() {
    VectorSpecies<Float> s = FloatVector.SPECIES_PREFERRED;
    float[] a = new float[s.length()];
    for (int i = 0; i < a.length; i++) {
      a[i] = (i % 2 == 0 ? 1e8f : 1f) * (1 + i * 0.37f) * (i % 3 == 0 ? -1 : 1);
    }
    float inOrder = 0;
    for (float v : a) {
      inOrder += v;
    }
    FloatVector v = FloatVector.fromArray(s, a, 0);
    assertEquals(inOrder, FastKernels.sumLanes(v, new float[s.length()]), "the first call");
    float last = 0;
    for (int i = 0; i < 300_000; i++) {
      last = FastKernels.sumLanes(FloatVector.fromArray(s, a, 0), new float[s.length()]);
      if (last != inOrder) {
        break;
      }
    }
    assertEquals(inOrder, last, "after 300,000 calls (compiled)");
  }

  /**
   * {@link FastKernels#microRows} against fused multiply-adds one depth step after the other, bit
   * for bit: with {@link FastKernels#UNROLL_ROWS} (Maven's {@code avx2} execution) and without it
   * (the default one), for even and odd depths, whole and partial tiles, with and without beta.
   * Rows past {@code mr} repeat A's last row.
   */
  @Test
  void rowsInPlaceAddTheirTermsInDepthOrder() {
    int lda = 301;
    int aOff = 4;
    checkTile("microRows, two steps at a time " + FastKernels.UNROLL_ROWS, FastKernels.MR * lda + 7,
        (i, mr, p) -> aOff + Math.min(i, mr - 1) * lda + p,
        (kc, a, bp, bOff, c, cOff, ldc, beta, mr, nr, tmp) ->
            FastKernels.microRows(kc, a, aOff, lda, bp, bOff, c, cOff, ldc, beta, mr, nr, tmp));
  }

  /**
   * {@link FastKernels#micro} (A packed in strips, column p's rows together) likewise, with the
   * tile's {@link FastKernels#MR} rows: 6, or 5 (Maven's {@code vector128} and {@code
   * avx2-second-jdk} executions).
   */
  @Test
  void packedStripsAddTheirTermsInDepthOrder() {
    int aOff = 3;
    int mrFull = FastKernels.MR;
    checkTile("micro, " + FastKernels.MR + " rows", mrFull * 256 + aOff,
        (i, mr, p) -> aOff + p * mrFull + i,
        (kc, a, bp, bOff, c, cOff, ldc, beta, mr, nr, tmp) ->
            FastKernels.micro(kc, a, aOff, mrFull, bp, bOff, c, cOff, ldc, beta, mr, nr, tmp));
  }

  /**
   * {@link FastKernels#microInterleaved} (A's strips in blocks of one vector of depth, each row's
   * vector after the other) likewise; a whole tile with beta other than 0 is left for the caller.
   */
  @Test
  void interleavedStripsAddTheirTermsInDepthOrder() {
    int aOff = 3;
    int mrFull = FastKernels.MR;
    int lanes = FloatVector.SPECIES_PREFERRED.length();
    checkTile("microInterleaved, " + mrFull + " rows", mrFull * (256 + lanes) + aOff,
        (i, mr, p) -> aOff + (p - p % lanes) * mrFull + i * lanes + p % lanes,
        (kc, a, bp, bOff, c, cOff, ldc, beta, mr, nr, tmp) ->
            FastKernels.microInterleaved(kc, a, aOff, bp, bOff, c, cOff, ldc, beta, mr, nr, tmp), false);
  }

  @Test
  void theTileRowsAreFiveOrSixAndAnythingElseIsRefusedNamingTheProperty() {
    assertEquals(5, FastKernels.tileRows("5"));
    assertEquals(6, FastKernels.tileRows("6"));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> FastKernels.tileRows("8"));
    assertEquals("convspark.cpu.tileRows must be 5 or 6 but was '8'", e.getMessage());
    // The rows the run asked for (Maven's vector128 execution asks for 5), else the default's.
    String asked = System.getProperty("convspark.cpu.tileRows");
    if (asked != null) {
      assertEquals(Integer.parseInt(asked), FastKernels.MR, "-Dconvspark.cpu.tileRows=" + asked);
    } else {
      assertTrue(FastKernels.MR == 5 || FastKernels.MR == 6, "MR " + FastKernels.MR);
    }
  }

  /** Where tile row {@code i}'s column {@code p} of A is, for a tile of {@code mr} rows. */
  private interface AIndex {
    int at(int i, int mr, int p);
  }

  /** A micro-kernel's call. */
  private interface Kernel {
    void run(int kc, float[] a, float[] bp, int bOff, float[] c, int cOff, int ldc, float beta, int mr, int nr,
             float[] tmp);
  }

  /**
   * Runs {@code kernel} on random tiles of depths 1 to 256 and checks, bit for bit: a whole tile
   * written to C as {@code sum + beta * C}, any other left in {@code tmp} with C untouched.
   */
  private static void checkTile(String name, int aLength, AIndex aIndex, Kernel kernel) {
    checkTile(name, aLength, aIndex, kernel, true);
  }

  /** {@link #checkTile}, a whole tile with beta other than 0 left in {@code tmp} unless {@code betaToC}. */
  private static void checkTile(String name, int aLength, AIndex aIndex, Kernel kernel, boolean betaToC) {
    Random rnd = new Random(11);
    int nrFull = FastKernels.NR;
    int mrFull = FastKernels.MR;
    int bOff = 5;
    int cOff = 2;
    float[] a = new float[aLength];
    for (int i = 0; i < a.length; i++) {
      a[i] = (float) rnd.nextGaussian();
    }
    for (int kc : new int[] {1, 2, 3, 8, 9, 255, 256}) {
      float[] bp = new float[kc * nrFull + bOff];
      for (int i = 0; i < bp.length; i++) {
        bp[i] = (float) rnd.nextGaussian();
      }
      for (int mr : new int[] {1, 5, mrFull}) {
        for (int nr : new int[] {1, nrFull - 1, nrFull}) {
          for (float beta : new float[] {0f, 1f}) {
            int ldc = nrFull + 3;
            float[] c = new float[mrFull * ldc + cOff];
            for (int i = 0; i < c.length; i++) {
              c[i] = (float) rnd.nextGaussian();
            }
            float[] wantC = c.clone();
            float[] wantTmp = new float[mrFull * nrFull];
            for (int i = 0; i < mrFull; i++) {
              for (int j = 0; j < nrFull; j++) {
                float sum = 0f;
                for (int p = 0; p < kc; p++) {
                  sum = Math.fma(bp[bOff + p * nrFull + j], a[aIndex.at(i, mr, p)], sum);
                }
                if (mr == mrFull && nr == nrFull && (beta == 0f || betaToC)) {
                  int at = cOff + i * ldc + j;
                  wantC[at] = beta != 0f ? sum + wantC[at] * beta : sum;
                } else {
                  wantTmp[i * nrFull + j] = sum;
                }
              }
            }
            float[] tmp = new float[mrFull * nrFull];
            kernel.run(kc, a, bp, bOff, c, cOff, ldc, beta, mr, nr, tmp);
            String what = name + ": kc " + kc + ", " + mr + " x " + nr + " tile, beta " + beta;
            assertArrayEquals(wantC, c, "C, " + what);
            assertArrayEquals(wantTmp, tmp, "the tile left for the caller, " + what);
          }
        }
      }
    }
  }
}
