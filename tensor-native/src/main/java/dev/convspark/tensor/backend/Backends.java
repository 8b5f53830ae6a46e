package dev.convspark.tensor.backend;

/**
 * Opens the backend a {@link Device} setting asks for. {@code auto} tries the GPU and falls back
 * to the CPU, logging one line that says which it chose and why; {@code gpu} without a usable GPU
 * fails with the reason (no driver, no device, kernels refused by the driver), in terms of the
 * setting: {@code device=gpu: no CUDA driver library (libcuda.so.1) could be loaded ...}.
 */
public final class Backends {

  private static final System.Logger LOG = System.getLogger(Backends.class.getName());

  private Backends() {
  }

  /**
   * The backend for {@code device}; CPU backends use {@code threads} threads.
   *
   * @throws IllegalStateException for {@code gpu} when no GPU can be used, saying why
   */
  public static Backend open(Device device, int threads) {
    return open(device, threads, Precision.FP32);
  }

  /**
   * The backend for {@code device}, computing on a GPU in {@code precision} (the CPU computes in
   * float32 whatever it says); CPU backends use {@code threads} threads.
   *
   * @throws IllegalStateException    for {@code gpu} when no GPU can be used, saying why
   * @throws IllegalArgumentException for {@code tf32} where the GPU has no TF32 tensor cores
   *                                  (with {@code auto} too: a GPU is there, the precision is what
   *                                  it cannot do)
   */
  public static Backend open(Device device, int threads, Precision precision) {
    switch (device.kind()) {
      case CPU:
        return CpuBackend.create(threads);
      case GPU:
        try {
          return CudaBackend.create(Math.max(0, device.ordinal()), precision);
        } catch (IllegalStateException e) {
          throw new IllegalStateException("device=" + device + ": " + e.getMessage(), e);
        }
      default:
        try {
          CudaBackend gpu = CudaBackend.create(Math.max(0, device.ordinal()), precision);
          LOG.log(System.Logger.Level.INFO, "device auto: using " + gpu.describe());
          return gpu;
        } catch (IllegalStateException e) {
          CpuBackend cpu = CpuBackend.create(threads);
          LOG.log(System.Logger.Level.INFO, "device auto: no usable GPU (" + e.getMessage() + "); using " + cpu.describe());
          return cpu;
        }
    }
  }
}
