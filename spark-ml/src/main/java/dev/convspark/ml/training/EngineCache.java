package dev.convspark.ml.training;

import dev.convspark.tensor.backend.Backend;
import dev.convspark.tensor.backend.Backends;
import dev.convspark.tensor.backend.Device;
import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.backend.Precision;
import dev.convspark.tensor.spec.ModelSpec;
import org.apache.spark.TaskContext;
import org.apache.spark.resource.ResourceInformation;

/**
 * One engine replica per task thread of an executor, kept between steps and between tasks: a
 * replica allocates its activations, thread pool or device memory once, not once per step. Task
 * threads never share one (a replica is not thread-safe).
 */
public final class EngineCache {

  private static final ThreadLocal<EngineCache> LOCAL = new ThreadLocal<>();

  private final String key;
  private final Backend backend;
  private final ModelRunner runner;
  /**
   * The parameters last copied into the replica by {@link #runner(String, int, String, String, float[])}
   * (by identity), or null once a caller may have changed them.
   */
  private float[] loaded;

  private EngineCache(String key, Backend backend, ModelRunner runner) {
    this.key = key;
    this.backend = backend;
    this.runner = runner;
  }

  /**
   * This thread's replica of {@code spec} on {@code device} ({@code auto}, {@code cpu},
   * {@code gpu} or {@code gpu:N}) computing in {@code precision} ({@code fp32} or {@code tf32});
   * inside a Spark task, {@code gpu} and {@code auto} use the GPU Spark assigned to the task
   * ({@code TaskContext.resources()}), so that executors sharing a machine do not pile onto one
   * device.
   */
  public static ModelRunner runner(String spec, int threads, String device, String precision) {
    EngineCache c = replica(spec, threads, device, precision);
    // The caller may train it: whatever it held is no longer known.
    c.loaded = null;
    return c.runner;
  }

  /**
   * {@link #runner(String, int, String, String)} holding {@code params}, which the caller does not
   * change while it is in use: for scoring, which copies a model's 3.3 million parameters (13 MB,
   * to the GPU where it runs there) only when this thread's replica held other ones last (another
   * model, or training since).
   */
  public static ModelRunner runner(String spec, int threads, String device, String precision, float[] params) {
    EngineCache c = replica(spec, threads, device, precision);
    if (c.loaded != params) {
      c.loaded = null;
      c.runner.copyParametersFrom(params);
      c.loaded = params;
    }
    return c.runner;
  }

  private static EngineCache replica(String spec, int threads, String device, String precision) {
    Device d = taskDevice(Device.parse(device));
    Precision p = Precision.parse(precision);
    String key = spec + "/" + threads + "/" + d + "/" + p;
    EngineCache c = LOCAL.get();
    if (c == null || !c.key.equals(key)) {
      if (c != null) {
        c.runner.close();
        c.backend.close();
      }
      Backend backend = Backends.open(d, threads, p);
      c = new EngineCache(key, backend, backend.open(ModelSpec.parse(spec)));
      LOCAL.set(c);
    }
    return c;
  }

  /** {@code d} with the GPU address Spark gave this task filled in, when it gave one. */
  static Device taskDevice(Device d) {
    TaskContext ctx = TaskContext.get();
    if (ctx == null || d.kind() == Device.Kind.CPU) {
      return d;
    }
    ResourceInformation gpu = ctx.resourcesJMap().get("gpu");
    if (gpu == null || gpu.addresses().length == 0) {
      return d;
    }
    try {
      return d.withDefaultOrdinal(Integer.parseInt(gpu.addresses()[0]));
    } catch (NumberFormatException e) {
      return d;
    }
  }
}
