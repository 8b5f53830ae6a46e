package dev.convspark.ml;

import dev.convspark.tensor.backend.CpuBackend;
import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.spec.ModelSpec;

/**
 * One engine replica per task thread of an executor, kept between steps and between tasks: a
 * replica allocates its activations and thread pool once, not once per step. Task threads never
 * share one (a replica is not thread-safe).
 */
final class EngineCache {

  private static final ThreadLocal<EngineCache> LOCAL = new ThreadLocal<>();

  private final String key;
  private final CpuBackend backend;
  private final ModelRunner runner;

  private EngineCache(String key, CpuBackend backend, ModelRunner runner) {
    this.key = key;
    this.backend = backend;
    this.runner = runner;
  }

  /** This thread's replica of {@code spec} on {@code threads} threads, created on first use. */
  static ModelRunner runner(String spec, int threads) {
    String key = spec + "/" + threads;
    EngineCache c = LOCAL.get();
    if (c == null || !c.key.equals(key)) {
      if (c != null) {
        c.runner.close();
        c.backend.close();
      }
      CpuBackend backend = CpuBackend.create(threads);
      c = new EngineCache(key, backend, backend.open(ModelSpec.parse(spec)));
      LOCAL.set(c);
    }
    return c.runner;
  }
}
