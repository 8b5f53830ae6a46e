package dev.convspark.tensor.backend;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import jcuda.CudaException;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUfunction;
import jcuda.driver.CUmodule;
import jcuda.driver.JCudaDriver;

/**
 * What {@link CudaEmulationTest} runs in a JVM whose {@code libcuda.so.1} is the emulated driver
 * ({@code tensor-native/cuda-emu.sh}): {@code parity} runs {@link GpuCheck}'s parity checks
 * against the fast CPU backend (5 training steps per optimizer instead of 20, the emulated GPU
 * taking about 1.6 s a deep-mnist step) and prints its table; {@code open DEVICE...} opens each
 * device setting and prints what it got or why it failed; {@code misuse} makes the mistakes the
 * driver must refuse (a copy past an allocation, a call on a thread with no current context, a
 * block of 2048 threads) and prints each error.
 */
final class EmulatedDriverProbe {

  private EmulatedDriverProbe() {
  }

  public static void main(String[] args) {
    if (args.length > 0 && args[0].equals("parity")) {
      boolean ok = true;
      try (CudaBackend gpu = CudaBackend.create(0); CpuBackend cpu = CpuBackend.create(2)) {
        System.out.println("GPU: " + gpu.describe());
        List<GpuCheck.Check> checks = new ArrayList<>();
        for (GpuCheck.Parity p : GpuCheck.PARITY) {
          checks.addAll(GpuCheck.layerParity(gpu, cpu, p));
        }
        for (String optimizer : new String[] {"adam", "sgd"}) {
          checks.add(GpuCheck.optimizerParity(gpu, cpu, optimizer));
          checks.addAll(GpuCheck.networkParity(gpu, cpu, optimizer, 5));
        }
        for (GpuCheck.Check c : checks) {
          System.out.printf(Locale.ROOT, "| %s | %.2e | %s |%n", c.what(), c.error(), c.ok() ? "yes" : "NO");
          ok &= c.ok();
        }
      }
      System.exit(ok ? 0 : 1);
    }
    if (args.length > 0 && args[0].equals("misuse")) {
      misuse();
      return;
    }
    for (int i = 1; i < args.length; i++) {
      try (Backend b = Backends.open(Device.parse(args[i]), 1)) {
        System.out.println(args[i] + " -> " + b.describe());
      } catch (IllegalStateException e) {
        System.out.println(args[i] + " failed: " + e.getMessage());
      }
    }
  }

  private interface Call {
    void run();
  }

  private static void attempt(String what, Call call) {
    try {
      call.run();
      System.out.println(what + ": accepted");
    } catch (CudaException e) {
      System.out.println(what + ": " + e.getMessage());
    }
  }

  private static void misuse() {
    JCudaDriver.setExceptionsEnabled(true);
    JCudaDriver.cuInit(0);
    CUdevice dev = new CUdevice();
    JCudaDriver.cuDeviceGet(dev, 0);
    CUcontext ctx = new CUcontext();
    JCudaDriver.cuCtxCreate(ctx, 0, dev);
    CUdeviceptr p = new CUdeviceptr();
    JCudaDriver.cuMemAlloc(p, 16);
    attempt("copy of 16 bytes into 16", () -> JCudaDriver.cuMemcpyHtoD(p, Pointer.to(new float[4]), 16));
    attempt("copy of 20 bytes into 16", () -> JCudaDriver.cuMemcpyHtoD(p, Pointer.to(new float[5]), 20));
    attempt("copy from 4 bytes in", () -> JCudaDriver.cuMemcpyDtoH(Pointer.to(new float[4]), p.withByteOffset(4), 16));
    CUmodule module = new CUmodule();
    JCudaDriver.cuModuleLoadData(module, CudaBackend.ptx());
    CUfunction relu = new CUfunction();
    JCudaDriver.cuModuleGetFunction(relu, module, "relu");
    Pointer args = Pointer.to(Pointer.to(p), Pointer.to(p), Pointer.to(new int[] {4}));
    attempt("relu over 4 floats", () -> JCudaDriver.cuLaunchKernel(relu, 1, 1, 1, 256, 1, 1, 0, null, args, null));
    attempt("a block of 2048 threads", () -> JCudaDriver.cuLaunchKernel(relu, 1, 1, 1, 2048, 1, 1, 0, null, args, null));
    attempt("a kernel the PTX lacks", () -> JCudaDriver.cuModuleGetFunction(new CUfunction(), module, "conv3d"));
    Thread other = new Thread(() -> attempt("a copy on a thread with no current context",
        () -> JCudaDriver.cuMemcpyHtoD(p, Pointer.to(new float[4]), 16)));
    other.start();
    try {
      other.join();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    JCudaDriver.cuMemFree(p);
    attempt("freeing it twice", () -> JCudaDriver.cuMemFree(p));
    JCudaDriver.cuCtxDestroy(ctx);
  }
}
