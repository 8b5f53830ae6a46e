package dev.convspark.tensor.backend;

import dev.convspark.tensor.optim.Optimizer;
import dev.convspark.tensor.spec.ModelSpec;
import dev.convspark.tensor.train.Trainer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import jcuda.CudaException;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUevent;
import jcuda.driver.CUfunction;
import jcuda.driver.CUgraph;
import jcuda.driver.CUgraphExec;
import jcuda.driver.CUmodule;
import jcuda.driver.CUstream;
import jcuda.driver.CUstreamCaptureMode;
import jcuda.driver.JCudaDriver;

/**
 * What {@link CudaEmulationTest} runs in a JVM whose {@code libcuda.so.1} is the emulated driver
 * ({@code tensor-native/cuda-emu.sh}): {@code parity} runs {@link GpuCheck}'s parity checks
 * against the fast CPU backend (5 training steps per optimizer instead of 20, the emulated GPU
 * taking about 1.6 s a deep-mnist step) and prints its table; {@code open DEVICE...} opens each
 * device setting and prints what it got or why it failed; {@code misuse} makes the mistakes the
 * driver must refuse (a copy past an allocation, a call on a thread with no current context, a
 * block of 2048 threads, a synchronous copy or a launch on the legacy stream while a stream is
 * capturing a graph) and prints each error, what a queued copy from pinned memory sends, what a
 * queued copy into pinned memory has written before and after a wait for an event and for the
 * device, and what a captured graph's copy from pinned memory sends each time it is launched;
 * {@code step} runs deep-mnist training steps at batch 50 and prints what the driver traced
 * ({@code CONVSPARK_CUDA_EMU_TRACE}) for the second and third steps as {@link Trainer} takes them
 * ("== trainer", "== trainer again") and one as a Spark worker alone takes it, summed loss then
 * scaled gradients ("== alone"), after a line with the four steps' losses and the hash of the
 * parameters after them;
 * {@code tf32} opens {@code gpu} and {@code auto} in TF32 and prints what it got or why not;
 * {@code parity tf32} runs the parity checks in TF32, within {@link Precision#TF32_TOLERANCE};
 * {@code inference} runs {@link GpuCheck#inferenceParity} alone;
 * {@code products} (or {@code products tf32}) runs the products' checks alone
 * ({@link GpuCheck#productParity}); {@code layers SPEC...} the layer checks of those stacks at
 * batch 7;
 * {@code oom [--infer IMAGES] BATCH...} trains and infers on a GPU of little memory (see
 * {@link #outOfMemory});
 * {@code profile} prints {@link GpuCheck#profile}'s rows for two steps at batch 50 ("kernel |
 * launches | us | GFLOP/s"); {@code large-batch ROUTE BATCH...} takes a training step of
 * deep-mnist at each batch on route {@code wide} or {@code classic} (run with the driver's kernels
 * off: their launches alone) and prints "ROUTE BATCH: launched".
 */
final class EmulatedDriverProbe {

  private EmulatedDriverProbe() {
  }

  public static void main(String[] args) throws IOException {
    if (args.length > 0 && args[0].equals("step")) {
      step(Path.of(System.getenv("CONVSPARK_CUDA_EMU_TRACE")));
      return;
    }
    if (args.length > 0 && List.of("parity", "products", "layers", "inference", "factored").contains(args[0])) {
      boolean layers = args[0].equals("layers");
      boolean inference = args[0].equals("inference");
      boolean factored = args[0].equals("factored");
      Precision precision = args.length > 1 && !layers ? Precision.parse(args[1]) : Precision.FP32;
      double tolerance = precision == Precision.TF32 ? Precision.TF32_TOLERANCE : GpuCheck.TOLERANCE;
      List<GpuCheck.Check> checks = new ArrayList<>();
      try (CudaBackend gpu = CudaBackend.create(0, precision); CpuBackend cpu = CpuBackend.create(2)) {
        System.out.println("GPU: " + gpu.describe());
        for (int i = 1; layers && i < args.length; i++) {
          checks.addAll(GpuCheck.layerParity(gpu, cpu, new GpuCheck.Parity(args[i], 7)));
        }
        if (inference) {
          checks.addAll(GpuCheck.inferenceParity(gpu, cpu));
        } else if (factored) {
          checks.addAll(GpuCheck.factoredParity(gpu, cpu));
        } else if (!layers) {
          checks.addAll(GpuCheck.productParity(gpu, 5));
        }
        if (args[0].equals("parity")) {
          for (GpuCheck.Parity p : GpuCheck.PARITY) {
            checks.addAll(GpuCheck.layerParity(gpu, cpu, p));
          }
          checks.addAll(GpuCheck.inferenceParity(gpu, cpu));
          checks.addAll(GpuCheck.factoredParity(gpu, cpu));
          for (String optimizer : new String[] {"adam", "sgd"}) {
            checks.add(GpuCheck.optimizerParity(gpu, cpu, optimizer));
            checks.addAll(GpuCheck.networkParity(gpu, cpu, optimizer, 5));
          }
        }
      }
      boolean ok = true;
      for (GpuCheck.Check c : checks.stream().map(c -> c.within(tolerance)).toList()) {
        System.out.printf(Locale.ROOT, "| %s | %.2e | %s |%n", c.what(), c.error(), c.ok() ? "yes" : "NO");
        ok &= c.ok();
      }
      System.exit(ok ? 0 : 1);
    }
    if (args.length > 1 && args[0].equals("large-batch")) {
      try (CudaBackend gpu = CudaBackend.create(0, args[1].equals("wide"))) {
        for (int i = 2; i < args.length; i++) {
          int batch = Integer.parseInt(args[i]);
          try (ModelRunner r = gpu.open(ModelSpec.parse(ModelSpec.DEEP_MNIST))) {
            r.initialize(1);
            float[] x = new float[batch * 784];
            r.computeGradients(x, new int[batch], batch, 1f / batch, 0);
            System.out.println(args[1] + " " + batch + ": launched");
          }
        }
      }
      return;
    }
    if (args.length > 0 && args[0].equals("profile")) {
      try (CudaBackend gpu = CudaBackend.create(0)) {
        for (GpuCheck.KernelTime k : GpuCheck.profile(gpu, 50, 2)) {
          System.out.printf(Locale.ROOT, "%s | %d | %.3f | %.6f%n", k.kernel(), k.launches(), k.micros(), k.gflops());
        }
      }
      return;
    }
    if (args.length > 0 && args[0].equals("profile-infer")) {
      try (CudaBackend gpu = CudaBackend.create(0)) {
        for (GpuCheck.KernelTime k : GpuCheck.inferenceProfile(gpu, 100, 2)) {
          System.out.printf(Locale.ROOT, "%s | %d | %.3f | %.6f%n", k.kernel(), k.launches(), k.micros(), k.gflops());
        }
      }
      return;
    }
    if (args.length > 0 && args[0].equals("tf32")) {
      for (Device d : new Device[] {Device.parse("gpu"), Device.AUTO}) {
        try (Backend b = Backends.open(d, 1, Precision.TF32)) {
          System.out.println(d + " tf32 -> " + b.describe());
        } catch (IllegalStateException | IllegalArgumentException e) {
          System.out.println(d + " tf32 failed: " + e.getMessage());
        }
      }
      return;
    }
    if (args.length > 0 && args[0].equals("oom")) {
      boolean infer = args.length > 2 && args[1].equals("--infer");
      outOfMemory(infer ? Integer.parseInt(args[2]) : 100,
          java.util.Arrays.stream(args).skip(infer ? 3 : 1).mapToInt(Integer::parseInt).toArray());
      return;
    }
    if (args.length > 0 && args[0].equals("misuse")) {
      misuse();
      return;
    }
    for (int i = 1; i < args.length; i++) {
      try (Backend b = Backends.open(Device.parse(args[i]), 1)) {
        System.out.println(args[i] + " -> " + b.describe());
      } catch (IllegalStateException | IllegalArgumentException e) {
        System.out.println(args[i] + " failed: " + e.getMessage());
      }
    }
  }

  private static void step(Path trace) throws IOException {
    ModelSpec spec = ModelSpec.parse(ModelSpec.DEEP_MNIST);
    int n = 50;
    float[] x = GpuCheck.random(n * 784, 1);
    int[] y = new int[n];
    for (int i = 0; i < n; i++) {
      y[i] = i % 10;
    }
    try (CudaBackend gpu = CudaBackend.create(0); ModelRunner r = gpu.open(spec)) {
      r.initialize(1);
      Optimizer adam = Optimizer.create("adam", 1e-4f, r.paramCount());
      Trainer trainer = new Trainer(r, adam, 0.5f, 7);
      StringBuilder losses = new StringBuilder("losses:");
      losses.append(' ').append(trainer.step(x, y, n, 1f / n).lossSum());
      long start = settled(trace);
      losses.append(' ').append(trainer.step(x, y, n, 1f / n).lossSum());
      long middle = settled(trace);
      losses.append(' ').append(trainer.step(x, y, n, 1f / n).lossSum());
      long end = settled(trace);
      losses.append(' ').append(r.computeGradients(x, y, n, 1f, 9).lossSum());
      r.scaleGradients(1f / n);
      r.applyGradients(adam);
      long last = settled(trace);
      float[] params = new float[r.paramCount()];
      r.copyParametersTo(params);
      System.out.println(losses + "; parameters' hash " + java.util.Arrays.hashCode(params));
      String all = Files.readString(trace);
      System.out.print("== trainer\n" + section(all, start, middle) + "== trainer again\n"
          + section(all, middle, end) + "== alone\n" + section(all, end, last));
    }
  }

  /**
   * Waits for the device to have run what was queued (the emulated driver runs queued work as late
   * as a wait allows, so a step's update would otherwise be traced in the next step's lines) and
   * returns the trace's length then.
   */
  private static long settled(Path trace) throws IOException {
    JCudaDriver.cuCtxSynchronize();
    return Files.size(trace);
  }

  /** The trace's lines from {@code from} to {@code to}, less the last: {@link #settled}'s own wait. */
  private static String section(String all, long from, long to) {
    String s = all.substring((int) from, (int) to);
    if (!s.endsWith("sync\n")) {
      throw new IllegalStateException("a section of the trace that does not end with the probe's wait:\n" + s);
    }
    return s.substring(0, s.length() - "sync\n".length());
  }

  /**
   * deep-mnist on a GPU of little memory ({@code CONVSPARK_CUDA_EMU_MEMORY}): a training step with
   * Adam at each batch size of {@code batches} (each batch the same images for the same size),
   * then inference on {@code images} images; each line says what it got or why it failed.
   */
  private static void outOfMemory(int images, int[] batches) {
    ModelSpec spec = ModelSpec.parse(ModelSpec.DEEP_MNIST);
    try (CudaBackend gpu = CudaBackend.create(0); ModelRunner r = gpu.open(spec)) {
      r.initialize(1);
      Optimizer adam = Optimizer.create("adam", 1e-4f, r.paramCount());
      for (int n : batches) {
        float[] x = GpuCheck.random(n * 784, n);
        int[] y = new int[n];
        try {
          float loss = (float) r.computeGradients(x, y, n, 1f / n, 3).lossSum();
          r.applyGradients(adam);
          System.out.println("training at batch " + n + ": loss " + loss);
        } catch (GpuOutOfMemoryException e) {
          System.out.println("training at batch " + n + " failed: " + e.getMessage() + " (asked "
              + e.requestedBytes() + ", free " + e.freeBytes() + ", total " + e.totalBytes() + ")");
        }
      }
      float[] logits = new float[images * 10];
      try {
        r.predictLogits(GpuCheck.random(images * 784, 5), images, logits);
        double sum = 0;
        for (float l : logits) {
          sum += Math.abs(l);
        }
        System.out.println("inference on " + images + " images: logits[0] " + logits[0] + ", sum of |logits| " + sum);
      } catch (GpuOutOfMemoryException e) {
        System.out.println("inference on " + images + " images failed: " + e.getMessage());
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
    // The wide products are compiled for blocks of 128 threads (__launch_bounds__, .maxntid).
    CUfunction wide = new CUfunction();
    JCudaDriver.cuModuleGetFunction(wide, module, "sgemm_wide");
    attempt("sgemm_wide in a block of 256 threads",
        () -> JCudaDriver.cuLaunchKernel(wide, 1, 1, 1, 256, 1, 1, 0, null, args, null));
    // relu's parameters as one buffer: two pointers and an int take 20 bytes, not 24.
    java.nio.ByteBuffer packed = java.nio.ByteBuffer.allocateDirect(24).order(java.nio.ByteOrder.nativeOrder());
    for (int size : new int[] {20, 24}) {
      Pointer extra = Pointer.to(JCudaDriver.CU_LAUNCH_PARAM_BUFFER_POINTER, Pointer.to(packed),
          JCudaDriver.CU_LAUNCH_PARAM_BUFFER_SIZE, Pointer.to(new long[] {size}), JCudaDriver.CU_LAUNCH_PARAM_END);
      attempt("relu's parameters in a buffer of " + size + " bytes",
          () -> JCudaDriver.cuLaunchKernel(relu, 1, 1, 1, 256, 1, 1, 0, null, null, extra));
    }
    attempt("a kernel the PTX lacks", () -> JCudaDriver.cuModuleGetFunction(new CUfunction(), module, "conv3d"));
    Thread other = new Thread(() -> attempt("a copy on a thread with no current context",
        () -> JCudaDriver.cuMemcpyHtoD(p, Pointer.to(new float[4]), 16)));
    other.start();
    try {
      other.join();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    // An asynchronous copy from pinned memory reads its source when the stream reaches it: bytes
    // rewritten before anything waited for it are the ones sent.
    Pointer pinned = new Pointer();
    JCudaDriver.cuMemAllocHost(pinned, 16);
    java.nio.FloatBuffer staged = pinned.getByteBuffer(0, 16).order(java.nio.ByteOrder.nativeOrder()).asFloatBuffer();
    staged.put(0, 1f);
    JCudaDriver.cuMemcpyHtoDAsync(p, pinned, 16, null);
    staged.put(0, 2f);
    float[] back = new float[4];
    JCudaDriver.cuMemcpyDtoH(Pointer.to(back), p, 16);
    System.out.println("pinned memory rewritten after its copy was queued: the device got " + back[0]);
    // A copy into pinned memory is made when the device's queue reaches it: read before a wait, the
    // memory holds what was there (NaN, fresh); an event's wait reaches the work queued before it
    // and no further.
    Pointer landing = new Pointer();
    JCudaDriver.cuMemAllocHost(landing, 32);
    java.nio.FloatBuffer landed = landing.getByteBuffer(0, 32).order(java.nio.ByteOrder.nativeOrder()).asFloatBuffer();
    staged.put(0, 3f);
    JCudaDriver.cuMemcpyHtoDAsync(p, pinned, 16, null);
    JCudaDriver.cuMemcpyDtoHAsync(landing, p, 16, null);
    System.out.println("pinned memory a queued copy writes, read before a wait: " + landed.get(0));
    CUevent event = new CUevent();
    JCudaDriver.cuEventCreate(event, 0);
    JCudaDriver.cuEventRecord(event, null);
    JCudaDriver.cuMemcpyDtoHAsync(landing.withByteOffset(16), p, 16, null);
    JCudaDriver.cuEventSynchronize(event);
    System.out.println("after a wait for an event: the copy queued before it " + landed.get(0) + ", the one after it "
        + landed.get(4));
    JCudaDriver.cuCtxSynchronize();
    System.out.println("after a wait for the device: the copy after the event " + landed.get(4));
    JCudaDriver.cuEventDestroy(event);
    JCudaDriver.cuMemFreeHost(landing);
    // Streams and graphs: what a capture refuses, and what a captured graph reads when it runs.
    CUstream stream = new CUstream();
    JCudaDriver.cuStreamCreate(stream, 0);
    int global = CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_GLOBAL;
    JCudaDriver.cuStreamBeginCapture(stream, global);
    attempt("a synchronous copy while a stream is capturing",
        () -> JCudaDriver.cuMemcpyHtoD(p, Pointer.to(new float[4]), 16));
    attempt("ending that capture", () -> JCudaDriver.cuStreamEndCapture(stream, new CUgraph()));
    JCudaDriver.cuStreamBeginCapture(stream, global);
    attempt("a launch on the legacy stream while a stream is capturing",
        () -> JCudaDriver.cuLaunchKernel(relu, 1, 1, 1, 256, 1, 1, 0, null, args, null));
    attempt("ending that capture", () -> JCudaDriver.cuStreamEndCapture(stream, new CUgraph()));
    // A captured copy's host memory must be pinned, into it as from it.
    JCudaDriver.cuStreamBeginCapture(stream, global);
    attempt("a copy into pageable memory captured",
        () -> JCudaDriver.cuMemcpyDtoHAsync(Pointer.to(new float[4]), p, 16, stream));
    attempt("ending that capture", () -> JCudaDriver.cuStreamEndCapture(stream, new CUgraph()));
    // In the thread-local mode (the backend's), another thread's synchronous copy goes through.
    JCudaDriver.cuStreamBeginCapture(stream, CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
    Thread copier = new Thread(() -> {
      JCudaDriver.cuCtxSetCurrent(ctx);
      attempt("another thread's synchronous copy during a thread-local capture",
          () -> JCudaDriver.cuMemcpyHtoD(p, Pointer.to(new float[4]), 16));
    });
    copier.start();
    try {
      copier.join();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    attempt("ending the thread-local capture", () -> JCudaDriver.cuStreamEndCapture(stream, new CUgraph()));
    JCudaDriver.cuStreamBeginCapture(stream, global);
    staged.put(0, 1f);
    JCudaDriver.cuMemcpyHtoDAsync(p, pinned, 16, stream);
    JCudaDriver.cuLaunchKernel(relu, 1, 1, 1, 256, 1, 1, 0, stream, args, null);
    CUgraph graph = new CUgraph();
    JCudaDriver.cuStreamEndCapture(stream, graph);
    CUgraphExec exec = new CUgraphExec();
    JCudaDriver.cuGraphInstantiate(exec, graph, 0);
    JCudaDriver.cuGraphDestroy(graph);
    StringBuilder got = new StringBuilder();
    for (float v : new float[] {5f, -7f}) {
      staged.put(0, v);
      JCudaDriver.cuGraphLaunch(exec, stream);
      JCudaDriver.cuMemcpyDtoH(Pointer.to(back), p, 16);
      got.append(got.length() == 0 ? "" : " then ").append(back[0]);
    }
    System.out.println("a graph of a copy and a ReLU, launched with 5 then -7 staged: the device got " + got);
    JCudaDriver.cuGraphExecDestroy(exec);
    JCudaDriver.cuStreamDestroy(stream);
    JCudaDriver.cuMemFreeHost(pinned);
    JCudaDriver.cuMemFree(p);
    attempt("freeing it twice", () -> JCudaDriver.cuMemFree(p));
    JCudaDriver.cuCtxDestroy(ctx);
  }
}
