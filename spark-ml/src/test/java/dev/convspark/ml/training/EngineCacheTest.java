package dev.convspark.ml.training;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import dev.convspark.tensor.backend.ModelRunner;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** A thread's replica copies a model's parameters in only when it held others, and never keeps stale ones. */
class EngineCacheTest {

  private static final String SPEC = "softmax-regression";

  private static float[] filled(int n, float v) {
    float[] a = new float[n];
    Arrays.fill(a, v);
    return a;
  }

  private static float[] held(ModelRunner r) {
    float[] out = new float[r.paramCount()];
    r.copyParametersTo(out);
    return out;
  }

  @Test
  void scoringReplicasHoldTheParametersAskedFor() {
    ModelRunner r = EngineCache.runner(SPEC, 1, "cpu", "fp32");
    int n = r.paramCount();
    float[] a = filled(n, 0.25f);
    float[] b = filled(n, -0.5f);
    assertSame(r, EngineCache.runner(SPEC, 1, "cpu", "fp32", a), "one replica a thread");
    assertArrayEquals(a, held(r));
    EngineCache.runner(SPEC, 1, "cpu", "fp32", b);
    assertArrayEquals(b, held(r), "another model's parameters replace the first's");
    EngineCache.runner(SPEC, 1, "cpu", "fp32", a);
    assertArrayEquals(a, held(r), "and back");

    // A caller that takes the replica without parameters may change them (training does): the
    // next scoring call copies its own in again, though it is the array it last asked for.
    EngineCache.runner(SPEC, 1, "cpu", "fp32").initialize(3);
    EngineCache.runner(SPEC, 1, "cpu", "fp32", a);
    assertArrayEquals(a, held(r), "after training on the replica");
  }
}
