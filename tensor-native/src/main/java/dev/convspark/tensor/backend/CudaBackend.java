package dev.convspark.tensor.backend;

import static jcuda.driver.JCudaDriver.CU_LAUNCH_PARAM_BUFFER_POINTER;
import static jcuda.driver.JCudaDriver.CU_LAUNCH_PARAM_BUFFER_SIZE;
import static jcuda.driver.JCudaDriver.CU_LAUNCH_PARAM_END;
import static jcuda.driver.JCudaDriver.cuCtxCreate;
import static jcuda.driver.JCudaDriver.cuCtxDestroy;
import static jcuda.driver.JCudaDriver.cuCtxSetCurrent;
import static jcuda.driver.JCudaDriver.cuCtxSynchronize;
import static jcuda.driver.JCudaDriver.cuDeviceGet;
import static jcuda.driver.JCudaDriver.cuDeviceGetAttribute;
import static jcuda.driver.JCudaDriver.cuDeviceGetCount;
import static jcuda.driver.JCudaDriver.cuDeviceGetName;
import static jcuda.driver.JCudaDriver.cuDriverGetVersion;
import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventDestroy;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuEventSynchronize;
import static jcuda.driver.JCudaDriver.cuGraphDestroy;
import static jcuda.driver.JCudaDriver.cuGraphExecDestroy;
import static jcuda.driver.JCudaDriver.cuGraphInstantiate;
import static jcuda.driver.JCudaDriver.cuGraphLaunch;
import static jcuda.driver.JCudaDriver.cuInit;
import static jcuda.driver.JCudaDriver.cuLaunchKernel;
import static jcuda.driver.JCudaDriver.cuMemAlloc;
import static jcuda.driver.JCudaDriver.cuMemAllocHost;
import static jcuda.driver.JCudaDriver.cuMemGetInfo;
import static jcuda.driver.JCudaDriver.cuMemFree;
import static jcuda.driver.JCudaDriver.cuMemFreeHost;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoHAsync;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoDAsync;
import static jcuda.driver.JCudaDriver.cuMemsetD32Async;
import static jcuda.driver.JCudaDriver.cuModuleGetFunction;
import static jcuda.driver.JCudaDriver.cuModuleLoadData;
import static jcuda.driver.JCudaDriver.cuStreamBeginCapture;
import static jcuda.driver.JCudaDriver.cuStreamCreate;
import static jcuda.driver.JCudaDriver.cuStreamDestroy;
import static jcuda.driver.JCudaDriver.cuStreamEndCapture;

import dev.convspark.tensor.Network;
import dev.convspark.tensor.kernels.ConvGeometry;
import dev.convspark.tensor.layers.Conv2d;
import dev.convspark.tensor.layers.Dense;
import dev.convspark.tensor.layers.Dropout;
import dev.convspark.tensor.layers.Flatten;
import dev.convspark.tensor.layers.Layer;
import dev.convspark.tensor.layers.MaxPool2d;
import dev.convspark.tensor.layers.Relu;
import dev.convspark.tensor.layers.SoftmaxCrossEntropy;
import dev.convspark.tensor.optim.Adam;
import dev.convspark.tensor.optim.Optimizer;
import dev.convspark.tensor.optim.Sgd;
import dev.convspark.tensor.spec.ModelSpec;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import jcuda.CudaException;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUfunction;
import jcuda.driver.CUgraph;
import jcuda.driver.CUgraphExec;
import jcuda.driver.CUmodule;
import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;
import jcuda.driver.CUstreamCaptureMode;
import jcuda.driver.JCudaDriver;

/**
 * The GPU backend: the CUDA driver API through JCuda, with convspark's own kernels
 * ({@code src/main/cuda/convspark.cu}, committed as PTX and loaded with {@code cuModuleLoadData}).
 * Parameters, gradients, optimizer moments and activations stay on the device between steps. A
 * training step uploads the batch (images, then labels with each sample's place in the global
 * batch, from which the dropout kernel draws the CPU's masks bit for bit), queues its kernels and
 * waits once, for the loss and accuracy; the optimizer's update is queued behind it without a
 * wait. Only the gradients (for an allreduce, when asked) and the parameters (when asked) come
 * back otherwise.
 *
 * <p>From the second step of a batch size on, the step's uploads and kernels (all but the
 * optimizer's update, which follows the gradients' allreduce) are one CUDA graph, captured once
 * and launched with one call ({@link #GRAPHS_PROPERTY}): at small batches the host's launches
 * paced the step. What changes from step to step (the dropout seeds, the loss's scale) goes up
 * with the batch, so the graph's arguments stay fixed.
 *
 * <p>Checked and timed on an NVIDIA H200 with {@code gpu-check.sh} (the CPU-versus-GPU parity
 * checks, the benchmark against PyTorch, a per-kernel profile; {@code tensor-native/GPU-RUNS.md}
 * keeps every run). The project's build machines and CI have no GPU: there the tests run this
 * backend on an emulated driver.
 */
public final class CudaBackend implements Backend {

  /** The kernels, as a classpath resource. */
  static final String PTX = "/dev/convspark/tensor/cuda/convspark.ptx";
  /** The oldest compute capability the float32 kernels' PTX targets ({@code .target sm_75}), major * 10 + minor. */
  static final int MIN_CAPABILITY = 75;

  /** The same kernels for compute capability 8.0 and newer, with the wide products' TF32 forms. */
  static final String PTX_TF32 = "/dev/convspark/tensor/cuda/convspark_tf32.ptx";
  private static final int THREADS = 256;
  private static final System.Logger LOG = System.getLogger(CudaBackend.class.getName());
  /**
   * The system property that picks the kernels' route: {@code wide} (the default: products of
   * 256 rows or more in 128 x 64 tiles, or 128 x 32 for 32 columns or fewer; convolutions without
   * a patch matrix, and at stride 1 their input gradients too) or {@code classic}
   * (64 x 64 tiles throughout, convolutions through im2col and col2im), so that one GPU run can
   * time both.
   */
  public static final String KERNELS_PROPERTY = "convspark.gpu.kernels";
  /**
   * The system property that says whether training steps run as CUDA graphs: {@code true} (the
   * default) or {@code false} (each kernel launched from the host, every step), so that one GPU
   * run can time both.
   */
  public static final String GRAPHS_PROPERTY = "convspark.gpu.graphs";
  /**
   * The system property that sets the fewest images a part of a pipelined inference holds (a whole
   * number, default {@value #INFERENCE_PART}): a batch of at least twice as many goes to the GPU in
   * as many parts of at least that size as it makes (1,000 images in two of 500), and
   * the host stages the next part (into the other half of its pinned memory) while the GPU runs the
   * one before, the logits coming back into pinned memory, with one wait at the end. {@code 0}
   * sends each batch whole and waits for its logits, so that one GPU run can time both.
   */
  public static final String INFERENCE_PART_PROPERTY = "convspark.gpu.inferencePart";
  /**
   * The system property that says whether stride-1 5 x 5 convolutions of 8 channels or more (and
   * their input gradients) go by Winograd's F(2 x 2, 5 x 5) on the wide route in float32:
   * {@code true} (the default: 36 products of tiles x channels by channels x filters, 2.78 times
   * fewer multiply-adds than the direct product, with the input and output transformed by kernels of
   * their own) or {@code false} (the direct product of the windows), so that one GPU run can time
   * both. TF32 keeps the direct product: the transformed operands, rounded to TF32's 10 bits, would
   * carry the transforms' larger values into the rounding.
   */
  public static final String WINOGRAD_PROPERTY = "convspark.gpu.winograd";
  /**
   * The wide kernels' tile of C (rows, columns), depth and threads ({@code WM}, ... in
   * convspark.cu); their {@code _n32} forms' tiles are {@code WN_NARROW} columns wide.
   */
  private static final int WM = 128;
  private static final int WN = 64;
  private static final int WN_NARROW = 32;
  private static final int WK = 8;
  private static final int WTHREADS = 128;
  /** The points of a Winograd tile's transform, F(2 x 2, 5 x 5)'s 6 x 6. */
  private static final int POINTS = 36;
  /**
   * The fewest images a part of a pipelined inference holds, by default
   * ({@link #INFERENCE_PART_PROPERTY}); a guess to be timed on a GPU. Each part's products keep 256
   * rows or more (the wide kernels' 128-row tiles, which a part's dense layers of 250 rows would
   * lose), and deep-mnist's conv2 (196 rows an image) at least 613 tiles, over one and a half waves
   * of an H200's 396 blocks at a time: parts of 334 (512 tiles, 1.3 waves) would leave its last wave
   * mostly idle three times a batch, where 1,000 images whole take 3.9 waves. Two parts hide the
   * staging of the second behind the GPU's work on the first.
   */
  static final int INFERENCE_PART = 400;

  private final CUcontext context;
  private final CUmodule module;
  private final Map<String, CUfunction> functions = new HashMap<>();
  private final String description;
  private final int multiprocessors;
  /** The wide route ({@link #KERNELS_PROPERTY}). */
  private final boolean wide;
  /** The wide products on the tensor cores, in TF32 ({@link Precision#TF32}). */
  private final boolean tf32;
  /** Training steps as CUDA graphs ({@link #GRAPHS_PROPERTY}). */
  private final boolean graphs;
  /** Images a part of a pipelined inference, 0 for none ({@link #INFERENCE_PART_PROPERTY}). */
  private final int inferencePart;
  /** Winograd's convolutions where they apply ({@link #WINOGRAD_PROPERTY}). */
  private final boolean winograd;
  /** Times every launch while set (GpuCheck's profile); null otherwise. */
  private KernelProfile profile;

  private CudaBackend(CUcontext context, CUmodule module, String description, int multiprocessors, boolean wide,
                      boolean tf32, boolean graphs, int inferencePart, boolean winograd) {
    this.context = context;
    this.module = module;
    this.description = description;
    this.multiprocessors = multiprocessors;
    this.wide = wide;
    this.tf32 = tf32;
    this.graphs = graphs;
    this.inferencePart = inferencePart;
    this.winograd = winograd;
  }

  /**
   * Whether {@link #GRAPHS_PROPERTY} asks for CUDA graphs.
   *
   * @throws IllegalArgumentException for a value other than {@code true} or {@code false}
   */
  static boolean graphSteps() {
    return onOff(GRAPHS_PROPERTY);
  }

  /** The switch {@code property} ({@code true} by default). */
  private static boolean onOff(String property) {
    String v = System.getProperty(property, "true");
    return switch (v) {
      case "true" -> true;
      case "false" -> false;
      default -> throw new IllegalArgumentException(property + "=" + v + ": expected true or false");
    };
  }

  /**
   * Whether {@link #WINOGRAD_PROPERTY} asks for Winograd's convolutions.
   *
   * @throws IllegalArgumentException for a value other than {@code true} or {@code false}
   */
  static boolean winogradConvolutions() {
    return onOff(WINOGRAD_PROPERTY);
  }

  /**
   * The images a part of a pipelined inference holds, as {@link #INFERENCE_PART_PROPERTY} sets it.
   *
   * @throws IllegalArgumentException for a value that is not a whole number from 0 up
   */
  static int inferencePart() {
    String v = System.getProperty(INFERENCE_PART_PROPERTY, String.valueOf(INFERENCE_PART));
    try {
      int part = Integer.parseInt(v.strip());
      if (part >= 0) {
        return part;
      }
    } catch (NumberFormatException e) {
      // said below
    }
    throw new IllegalArgumentException(INFERENCE_PART_PROPERTY + "=" + v + ": expected a whole number of images from 0"
        + " up (0: each batch whole)");
  }

  /**
   * Whether {@link #KERNELS_PROPERTY} asks for the wide route.
   *
   * @throws IllegalArgumentException for a value other than {@code wide} or {@code classic}
   */
  static boolean wideRoute() {
    String v = System.getProperty(KERNELS_PROPERTY, "wide");
    return switch (v) {
      case "wide" -> true;
      case "classic" -> false;
      default -> throw new IllegalArgumentException(KERNELS_PROPERTY + "=" + v + ": expected wide or classic");
    };
  }

  /**
   * Opens GPU number {@code ordinal}.
   *
   * @throws IllegalStateException saying why no GPU can be used: no CUDA driver library, no such
   *                               device, or kernels the driver refuses
   */
  public static CudaBackend create(int ordinal) {
    return create(ordinal, Precision.FP32);
  }

  /**
   * Opens GPU number {@code ordinal} to compute in {@code precision}.
   *
   * @throws IllegalStateException    as {@link #create(int)}
   * @throws IllegalArgumentException for TF32 on a GPU older than compute capability 8.0, or on
   *                                  the classic route, which has no TF32 kernels
   */
  public static CudaBackend create(int ordinal, Precision precision) {
    return create(ordinal, wideRoute(), precision == Precision.TF32);
  }

  /**
   * Opens GPU number {@code ordinal} with the wide route or the classic one
   * ({@link #KERNELS_PROPERTY}), whatever the property says, in float32.
   *
   * @throws IllegalStateException as {@link #create(int)}
   */
  public static CudaBackend create(int ordinal, boolean wide) {
    return create(ordinal, wide, false);
  }

  private static CudaBackend create(int ordinal, boolean wide, boolean tf32) {
    return create(ordinal, wide, tf32, graphSteps(), inferencePart(), winogradConvolutions());
  }

  /**
   * Opens GPU number {@code ordinal} on the default route of kernels in float32, with training
   * steps as CUDA graphs or not ({@link #GRAPHS_PROPERTY}) and inference pipelined in parts of
   * {@code inferencePart} images or not (0; {@link #INFERENCE_PART_PROPERTY}), whatever the
   * properties say.
   *
   * @throws IllegalStateException as {@link #create(int)}
   */
  static CudaBackend withOverlap(int ordinal, boolean graphs, int inferencePart) {
    return create(ordinal, wideRoute(), false, graphs, inferencePart, winogradConvolutions());
  }

  /**
   * Opens GPU number {@code ordinal} as {@link #create(int)} does, but with every convolution by
   * its direct product ({@link #WINOGRAD_PROPERTY} {@code false}), whatever the property says.
   *
   * @throws IllegalStateException as {@link #create(int)}
   */
  static CudaBackend direct(int ordinal) {
    return create(ordinal, wideRoute(), false, graphSteps(), inferencePart(), false);
  }

  private static CudaBackend create(int ordinal, boolean wide, boolean tf32, boolean graphs, int inferencePart,
                                    boolean winograd) {
    if (tf32 && !wide) {
      throw new IllegalArgumentException("precision=tf32: " + KERNELS_PROPERTY + "=classic has no TF32 kernels");
    }
    try {
      JCudaDriver.setExceptionsEnabled(true);
      int[] count = new int[1];
      try {
        cuInit(0);
        cuDeviceGetCount(count);
      } catch (CudaException e) {
        // A driver that finds no GPU fails cuInit itself.
        if (!String.valueOf(e.getMessage()).contains("CUDA_ERROR_NO_DEVICE")) {
          throw e;
        }
      }
      if (ordinal >= count[0]) {
        throw new IllegalStateException(count[0] == 0 ? "the CUDA driver reports no GPU"
            : "gpu:" + ordinal + " does not exist (the CUDA driver reports " + (count[0] == 1 ? "1 GPU: gpu:0)"
                : count[0] + " GPUs: gpu:0 to gpu:" + (count[0] - 1) + ")"));
      }
      CUdevice dev = new CUdevice();
      cuDeviceGet(dev, ordinal);
      byte[] name = new byte[256];
      cuDeviceGetName(name, name.length, dev);
      int[] version = new int[1];
      cuDriverGetVersion(version);
      int[] sms = new int[1];
      cuDeviceGetAttribute(sms, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev);
      String device = new String(name, java.nio.charset.StandardCharsets.US_ASCII).trim().replace("\0", "");
      int[] major = new int[1];
      int[] minor = new int[1];
      cuDeviceGetAttribute(major, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
      cuDeviceGetAttribute(minor, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
      // The PTX's .target: a driver compiles it for that architecture and newer ones only, and
      // otherwise refuses it with an error that does not say so (CUDA 13's nvcc builds nothing older).
      if (major[0] * 10 + minor[0] < MIN_CAPABILITY) {
        throw new IllegalStateException("gpu:" + ordinal + " (" + device + ") has compute capability " + major[0] + "."
            + minor[0] + ", and convspark's kernels are built for " + MIN_CAPABILITY / 10 + "." + MIN_CAPABILITY % 10
            + " (Turing, T4) or newer");
      }
      if (tf32) {
        if (major[0] < 8) {
          throw new IllegalArgumentException("precision=tf32: gpu:" + ordinal + " (" + device + ") has compute"
              + " capability " + major[0] + "." + minor[0] + ", and TF32 needs the tensor cores of 8.0 or newer;"
              + " precision=fp32 runs on it");
        }
      }
      CUcontext ctx = new CUcontext();
      cuCtxCreate(ctx, 0, dev);
      CUmodule module = new CUmodule();
      try {
        cuModuleLoadData(module, ptx(tf32 ? PTX_TF32 : PTX));
      } catch (CudaException e) {
        cuCtxDestroy(ctx);
        throw new IllegalStateException("the CUDA driver (version " + version[0] / 1000 + "." + version[0] % 1000 / 10
            + ") refused convspark's kernels (" + e.getMessage() + "); they need a CUDA 12.0 or newer driver", e);
      }
      return new CudaBackend(ctx, module, "gpu:" + ordinal + " (" + device + ", CUDA driver " + version[0] / 1000 + "."
          + version[0] % 1000 / 10 + (wide ? "" : ", classic kernels") + (tf32 ? ", TF32" : "")
          + (graphs ? "" : ", no CUDA graphs") + (inferencePart > 0 ? "" : ", inference in one part")
          + (winograd || !wide || tf32 ? "" : ", no Winograd") + ")", sms[0], wide, tf32, graphs, inferencePart,
          winograd);
    } catch (LinkageError e) {
      // No libcuda.so.1 (UnsatisfiedLinkError first, NoClassDefFoundError on later calls).
      String first = String.valueOf(e).lines().findFirst().orElse("");
      throw new IllegalStateException("no CUDA driver library (libcuda.so.1) could be loaded (" + first + ")", e);
    } catch (CudaException e) {
      throw new IllegalStateException("the CUDA driver failed: " + e.getMessage(), e);
    }
  }

  /** The float32 kernels' PTX text, NUL-terminated as {@code cuModuleLoadData} wants it. */
  static byte[] ptx() {
    return ptx(PTX);
  }

  /** The PTX text of the classpath resource {@code resource}, NUL-terminated. */
  static byte[] ptx(String resource) {
    try (InputStream in = CudaBackend.class.getResourceAsStream(resource)) {
      if (in == null) {
        throw new IllegalStateException("the kernels " + resource + " are missing from the classpath");
      }
      byte[] b = in.readAllBytes();
      return java.util.Arrays.copyOf(b, b.length + 1);
    } catch (IOException e) {
      throw new IllegalStateException("cannot read " + resource + ": " + e.getMessage(), e);
    }
  }

  @Override
  public String describe() {
    return description;
  }

  @Override
  public ModelRunner open(ModelSpec spec) {
    cuCtxSetCurrent(context);
    try {
      return new Runner(new Network(spec));
    } catch (NoMemory e) {
      throw outOfMemory(e, "the parameters of " + spec, null);
    }
  }

  @Override
  public void close() {
    cuCtxDestroy(context);
  }

  /**
   * C = op(A) op(B) (row-major, {@code m x n}, ldc = n) on this GPU as the backend's layers
   * multiply: the wide tiles or the 64 x 64 ones by the product's shape, split over k as it
   * would be; for checking the kernels on random shapes against a plain loop
   * ({@link GpuCheck#productParity}).
   */
  float[] product(boolean ta, boolean tb, int m, int n, int k, float[] a, int lda, float[] b, int ldb) {
    cuCtxSetCurrent(context);
    try (Runner r = new Runner(new Network(ModelSpec.parse("in1-dense1")))) {
      return r.product(ta, tb, m, n, k, a, lda, b, ldb);
    } catch (NoMemory e) {
      throw outOfMemory(e, "a product of " + m + " x " + k + " by " + k + " x " + n, null);
    }
  }

  /** Attaches {@code p} to time every later launch on the GPU, or detaches it (null). */
  void profile(KernelProfile p) {
    profile = p;
  }

  private CUfunction function(String name) {
    return functions.computeIfAbsent(name, n -> {
      CUfunction f = new CUfunction();
      cuModuleGetFunction(f, module, n);
      return f;
    });
  }

  /**
   * How much of {@code k} one block of the {@code sgemm} kernel (64 x 64 tiles, 16 deep) sums for
   * an {@code m x n} product on a GPU of {@code multiprocessors}; see the next.
   */
  static int kSplit(int m, int n, int k, int multiprocessors) {
    return kSplit(m, n, k, multiprocessors, 64, 64, 16);
  }

  /**
   * How much of {@code k} one block of a product kernel with {@code tileM x tileN} tiles of C,
   * {@code depth} deep, sums for an {@code m x n} product on a GPU of {@code multiprocessors}:
   * all of it when the product has two tiles for every multiprocessor or k is short (under 128),
   * else an equal share (a multiple of depth, at least 64) of enough splits for two blocks per
   * multiprocessor. (One block of 256 threads leaves a multiprocessor mostly waiting: on an H200,
   * conv2's forward product at batch 50, 154 tiles unsplit on 132 multiprocessors, ran at 12
   * TFLOP/s, products with two blocks or more per multiprocessor at 17 to 18.)
   */
  static int kSplit(int m, int n, int k, int multiprocessors, int tileM, int tileN, int depth) {
    long tiles = (long) ((m + tileM - 1) / tileM) * ((n + tileN - 1) / tileN);
    int steps = (k + depth - 1) / depth;
    int least = 64 / depth;
    if (tiles >= 2L * multiprocessors || steps < 2 * least) {
      return k;
    }
    long splits = Math.min((2L * multiprocessors + tiles - 1) / tiles, steps / least);
    return (int) ((steps + splits - 1) / splits) * depth;
  }

  /** A device buffer of floats (or ints), grown on demand. */
  private static final class Buffer {
    /** For copies and cuMemFree. */
    CUdeviceptr ptr;
    /** The device address, for kernel arguments. */
    long address;
    long capacity;

    long ensure(long elements) {
      if (elements > Integer.MAX_VALUE) {
        // Most kernels index a tensor with a 32-bit integer: past it they would read and write
        // outside it (a fault on the GPU), so the batch is refused before anything is allocated.
        throw new IllegalArgumentException(String.format(Locale.ROOT, "a GPU tensor of %,d values is more than the"
            + " kernels index (2,147,483,647): fewer images a GPU at a time (a smaller batchSize, or more partitions"
            + " to share it)", elements));
      }
      if (elements > capacity) {
        if (ptr != null) {
          // Kernels queued earlier in this step may still read the old memory, and cuMemFree
          // only "may" wait for them. Growing happens in a first step, not in the ones after.
          cuCtxSynchronize();
        }
        free();
        CUdeviceptr p = new CUdeviceptr();
        allocate(() -> cuMemAlloc(p, Math.max(1, elements) * 4L), Math.max(1, elements) * 4L, false);
        ptr = p;
        address = new DeviceAddress(ptr).value();
        capacity = elements;
      }
      return address;
    }

    long at(long element) {
      return address + element * 4L;
    }

    void free() {
      if (ptr != null) {
        cuMemFree(ptr);
        ptr = null;
        address = 0;
        capacity = 0;
      }
    }
  }

  /**
   * Pinned (page-locked) host memory that a batch is uploaded from, grown on demand. A copy from
   * it ({@code cuMemcpyHtoDAsync}) is queued behind the kernels before it and the host goes on at
   * once; a copy from Java's heap (pageable memory) first waits for them, so every step's upload
   * waited for the previous step's update. The host refills it only after a wait (a step's
   * metrics, an inference chunk's logits), when the copies queued from it have been made.
   */
  private static final class Staging {
    private Pointer host;
    private ByteBuffer bytes;
    private long capacity;
    /** How many times the memory has been allocated (a captured step holds its address). */
    private long allocations;

    /** The memory, at least {@code size} bytes, cleared for writing from its start. */
    ByteBuffer ensure(long size) {
      if (size > capacity) {
        if (host != null) {
          cuCtxSynchronize();
        }
        free();
        allocations++;
        Pointer h = new Pointer();
        allocate(() -> cuMemAllocHost(h, size), size, true);
        host = h;
        bytes = host.getByteBuffer(0, size).order(ByteOrder.nativeOrder());
        capacity = size;
      }
      bytes.clear();
      return bytes;
    }

    /** Queues the copy of {@code size} bytes from {@code offset} into {@code dst} on {@code stream}. */
    void upload(long offset, long size, Buffer dst, CUstream stream) {
      cuMemcpyHtoDAsync(dst.ptr, host.withByteOffset(offset), size, stream);
    }

    /**
     * Queues the copy of {@code size} bytes from {@code src} into this memory from {@code offset}, on
     * the legacy stream: the bytes are there once a wait has followed it.
     */
    void download(Buffer src, long offset, long size) {
      cuMemcpyDtoHAsync(host.withByteOffset(offset), src.ptr, size, null);
    }

    void free() {
      if (host != null) {
        cuMemFreeHost(host);
        host = null;
        bytes = null;
        capacity = 0;
      }
    }
  }

  /** An allocation that the driver refused for want of memory: how many bytes were asked for. */
  private static final class NoMemory extends RuntimeException {
    private static final long serialVersionUID = 1L;
    final long bytes;
    /** Pinned host memory (cuMemAllocHost) rather than the GPU's. */
    final boolean host;

    NoMemory(long bytes, boolean host, CudaException cause) {
      super(cause.getMessage(), cause, false, false);
      this.bytes = bytes;
      this.host = host;
    }
  }

  /**
   * Runs an allocation of {@code bytes} (of pinned host memory where {@code host}); the driver's
   * out-of-memory error becomes {@link NoMemory}.
   */
  private static void allocate(Runnable allocation, long bytes, boolean host) {
    try {
      allocation.run();
    } catch (CudaException e) {
      if (String.valueOf(e.getMessage()).contains("CUDA_ERROR_OUT_OF_MEMORY")) {
        throw new NoMemory(bytes, host, e);
      }
      throw e;
    }
  }

  /**
   * The error for {@code e} met while doing {@code what}: this GPU, what, the bytes asked for, the
   * GPU's free and total memory as the driver reports them now, and {@code advice} (or none).
   */
  private GpuOutOfMemoryException outOfMemory(NoMemory e, String what, String advice) {
    long[] free = {-1};
    long[] total = {-1};
    if (!e.host) {
      try {
        cuMemGetInfo(free, total);
      } catch (CudaException unknown) {
        free[0] = -1;
        total[0] = -1;
      }
    }
    String memory = total[0] < 0 ? "" : ", with " + mib(free[0]) + " of its " + mib(total[0]) + " free";
    GpuOutOfMemoryException error = new GpuOutOfMemoryException(description + " is out of "
        + (e.host ? "pinned host memory" : "memory") + " for " + what + ": " + mib(e.bytes) + " more were asked for"
        + memory + (advice == null ? "" : "; " + advice) + (e.host ? "" : "; another process on the same GPU may"
        + " hold some of it"), e.bytes, free[0], total[0]);
    error.initCause(e.getCause());
    return error;
  }

  private static String mib(long bytes) {
    return String.format(java.util.Locale.ROOT, "%.1f MiB", bytes / 1048576.0);
  }

  /** A device pointer's address as a number (JCuda keeps it to itself). */
  private static final class DeviceAddress extends CUdeviceptr {
    DeviceAddress(CUdeviceptr p) {
      super(p, 0);
    }

    long value() {
      return getNativePointer() + getByteOffset();
    }
  }

  /** How many images inference runs through the network at a time, where the GPU has room. */
  private static final int PREDICT_CHUNK = 1024;

  private final class Runner implements ModelRunner {
    private final Network net;
    private final List<Layer> layers;
    private final int paramCount;
    private final Buffer params = new Buffer();
    private final Buffer grads = new Buffer();
    private final Buffer m = new Buffer();
    private final Buffer v = new Buffer();
    private final Buffer input = new Buffer();
    /**
     * Labels (n ints), then each sample's index in the global batch (n longs, 8-byte aligned),
     * then the step's values: each dropout layer's mixed seed (a long), then each sample's loss
     * scale (n floats: the step's scale times the sample's weight).
     */
    private final Buffer batchInfo = new Buffer();
    private final Buffer dLogits = new Buffer();
    /** Per sample: the loss (n doubles), then 1 where the prediction was right (n ints). */
    private final Buffer metrics = new Buffer();
    private final Buffer scratch = new Buffer();
    private final Buffer splitK = new Buffer();
    /** A Winograd convolution's transformed weights, input and products (see {@link #winogradConvolution}). */
    private final Buffer winogradWork = new Buffer();
    /** Every replica's factors of the factored dense layer, uploaded for their product (see {@link #copyFactoredGradientsFrom}). */
    private final Buffer factors = new Buffer();
    /** The factored dense layer's index (see {@link #factoredDense}), -1 for none. */
    private final int factorLayer;
    /** Where the last backward pass found that layer's output gradient, and the last step's samples. */
    private Buffer factorDy;
    private int lastSamples;
    private final Staging staging = new Staging();
    /** Pinned memory the logits of a pipelined inference come back into. */
    private final Staging results = new Staging();
    /**
     * In a pipelined inference, one event per half of {@link #staging}, recorded after the copy from
     * that half and waited for before the host refills it, then one recorded after the last part's
     * logits, waited for before they are read. Created with the first such inference.
     */
    private CUevent[] marks;
    private final List<Buffer> acts = new ArrayList<>();
    private final List<Buffer> dacts = new ArrayList<>();
    private final List<Buffer> aux = new ArrayList<>();
    /** Where each layer's output of the last forward pass is: its buffer, or its input's. */
    private final Buffer[] outs;
    /** Dropout layers that masked in the last forward pass. */
    private final boolean[] masked;
    /** ReLU layers that the convolution or dense layer before them applies (in its epilogue). */
    private final boolean[] reluInPrevious;
    /** ReLU layers whose backward pass the max pool after them did in the last backward pass. */
    private final boolean[] reluInPoolBackward;
    private Optimizer onDevice;
    /** Images inference runs at a time: PREDICT_CHUNK, or fewer once the GPU had too little memory. */
    private int predictChunk = PREDICT_CHUNK;
    /** Each layer's place among the dropout layers (its seed's slot in batchInfo), -1 for others. */
    private final int[] dropoutSlot;
    private final int dropouts;
    /** Where this step's dropout seeds are on the device (forward's dropout launches read them). */
    private long seedsAt;
    /** The stream that work is queued on: null (the legacy stream) but while a step is captured. */
    private CUstream queue;
    /** The stream steps are captured on and their graphs launched on (created with the first). */
    private CUstream graphStream;
    /** The captured step, or null. */
    private StepGraph graph;
    /** What the last step launched one by one was (see {@link #graphKey}): the next like it is captured. */
    private String eagerKey;
    /** Set when a capture failed: steps are then launched one by one. */
    private boolean graphsFailed;
    /**
     * A launch's arguments, packed as the kernel's parameters lie (each at a multiple of its
     * size) and handed to the driver in one buffer (cuLaunchKernel's {@code extra}): a pointer per
     * argument made for every launch cost JCuda several times as much host time.
     */
    private final ByteBuffer args = ByteBuffer.allocateDirect(256).order(ByteOrder.nativeOrder());
    private final ByteBuffer argsSize = ByteBuffer.allocateDirect(8).order(ByteOrder.nativeOrder());
    private final Pointer extra = Pointer.to(CU_LAUNCH_PARAM_BUFFER_POINTER, Pointer.to(args),
        CU_LAUNCH_PARAM_BUFFER_SIZE, Pointer.to(argsSize), CU_LAUNCH_PARAM_END);

    Runner(Network net) {
      this.net = net;
      this.layers = net.layers();
      this.paramCount = net.paramCount();
      this.outs = new Buffer[layers.size()];
      this.masked = new boolean[layers.size()];
      this.reluInPrevious = new boolean[layers.size()];
      this.reluInPoolBackward = new boolean[layers.size()];
      this.dropoutSlot = new int[layers.size()];
      int d = 0;
      for (int i = 0; i < layers.size(); i++) {
        dropoutSlot[i] = layers.get(i) instanceof Dropout ? d++ : -1;
      }
      this.dropouts = d;
      this.factorLayer = net.largestDense();
      for (int i = 1; i < layers.size(); i++) {
        Layer before = layers.get(i - 1);
        reluInPrevious[i] = layers.get(i) instanceof Relu && (before instanceof Conv2d || before instanceof Dense);
      }
      for (int i = 0; i < layers.size(); i++) {
        acts.add(new Buffer());
        dacts.add(new Buffer());
        aux.add(new Buffer());
      }
      try {
        params.ensure(paramCount);
        grads.ensure(paramCount);
        upload(net.params(), params);
      } catch (NoMemory e) {
        params.free();
        grads.free();
        throw e;
      }
    }

    private void upload(float[] src, Buffer dst) {
      cuCtxSetCurrent(context);
      dst.ensure(src.length);
      cuMemcpyHtoD(dst.ptr, Pointer.to(src), src.length * 4L);
    }

    private void download(Buffer src, float[] dst, int count) {
      cuCtxSetCurrent(context);
      cuMemcpyDtoH(Pointer.to(dst), src.ptr, count * 4L);
    }

    @Override
    public ModelSpec spec() {
      return net.spec();
    }

    @Override
    public int paramCount() {
      return paramCount;
    }

    @Override
    public void initialize(long seed) {
      net.initialize(seed);
      upload(net.params(), params);
    }

    @Override
    public void copyParametersTo(float[] dst) {
      download(params, dst, paramCount);
    }

    @Override
    public void copyParametersFrom(float[] src) {
      requireLength(src, "parameters");
      upload(src, params);
    }

    @Override
    public void copyGradientsTo(float[] dst) {
      download(grads, dst, paramCount);
    }

    @Override
    public void copyGradientsFrom(float[] src) {
      requireLength(src, "gradients");
      upload(src, grads);
    }

    @Override
    public DenseWeights factoredDense() {
      if (factorLayer < 0) {
        return null;
      }
      Dense d = (Dense) layers.get(factorLayer);
      return new DenseWeights(d.paramOffset(), d.inputs(), d.units());
    }

    /**
     * Four copies from the device, 13 x fewer bytes than the gradient for deep-mnist at a batch of
     * 50: the gradient before and after the layer's weights, and the layer's input and output
     * gradient where the last step left them (its activations, and the buffer the layer after it
     * wrote).
     */
    @Override
    public void copyFactoredGradientsTo(float[] dst, int n, int xAt, int dyAt) {
      DenseWeights d = factoredDense();
      if (d == null || factorDy == null || n != lastSamples) {
        throw new IllegalStateException(ModelRunner.noFactors(lastSamples, n));
      }
      ModelRunner.requireFactored("copyFactoredGradientsTo", paramCount, d, dst, n, xAt, dyAt);
      cuCtxSetCurrent(context);
      int w = d.weightOffset();
      int end = w + d.inputs() * d.units();
      Pointer host = Pointer.to(dst);
      cuMemcpyDtoH(host, grads.ptr, w * 4L);
      cuMemcpyDtoH(host.withByteOffset(w * 4L), grads.ptr.withByteOffset(end * 4L), (paramCount - end) * 4L);
      Buffer x = factorLayer == 0 ? input : outs[factorLayer - 1];
      cuMemcpyDtoH(host.withByteOffset(xAt * 4L), x.ptr, (long) n * d.inputs() * 4L);
      cuMemcpyDtoH(host.withByteOffset(dyAt * 4L), factorDy.ptr, (long) n * d.units() * 4L);
    }

    /** Uploads the other gradients and the factors, then the weights' gradient is their product, on the device. */
    @Override
    public void copyFactoredGradientsFrom(float[] src, int samples, int xAt, int dyAt) {
      DenseWeights d = factoredDense();
      ModelRunner.requireFactored("copyFactoredGradientsFrom", paramCount, d, src, samples, xAt, dyAt);
      cuCtxSetCurrent(context);
      int w = d.weightOffset();
      int end = w + d.inputs() * d.units();
      Pointer host = Pointer.to(src);
      long xFloats = (long) samples * d.inputs();
      try {
        factors.ensure(xFloats + (long) samples * d.units());
      } catch (NoMemory e) {
        throw outOfMemory(e, "the factors of " + samples + " samples' dense gradient", null);
      }
      cuMemcpyHtoD(grads.ptr, host, w * 4L);
      cuMemcpyHtoD(grads.ptr.withByteOffset(end * 4L), host.withByteOffset(w * 4L), (paramCount - end) * 4L);
      if (samples == 0) {
        cuMemsetD32Async(grads.ptr.withByteOffset(w * 4L), 0, (long) d.inputs() * d.units(), queue);
        return;
      }
      cuMemcpyHtoD(factors.ptr, host.withByteOffset(xAt * 4L), xFloats * 4L);
      cuMemcpyHtoD(factors.ptr.withByteOffset(xFloats * 4L), host.withByteOffset(dyAt * 4L),
          (long) samples * d.units() * 4L);
      gemm(true, false, d.inputs(), d.units(), samples, factors.address, d.inputs(), factors.at(xFloats), d.units(),
          grads.at(w), d.units());
    }

    private void requireLength(float[] a, String what) {
      if (a.length != paramCount) {
        throw new IllegalArgumentException(what + " must hold " + paramCount + " floats for " + net.spec().name()
            + " but hold " + a.length);
      }
    }

    @Override
    public void setKeepProb(float keepProb) {
      net.setKeepProb(keepProb);
    }

    /** Launches {@code name} over {@code count} threads in blocks of 256, with the given arguments. */
    private void launch(String name, long count, Object... a) {
      if (count <= 0) {
        return;
      }
      launchGrid(name, (int) ((count + THREADS - 1) / THREADS), 1, 1, THREADS, a);
    }

    /** Integers and floats are 4-byte parameters; longs, 8-byte ones (device addresses among them). */
    private void launchGrid(String name, int gx, int gy, int gz, int block, Object... a) {
      String label = null;
      double flops = 0;
      if (profile != null) {
        long blocks = (long) gx * gy * gz;
        // Products and sums by their shapes (arguments m, n, k; splits, rows, cols; rows, cols).
        if (name.equals("sgemm")) {
          label = "sgemm " + a[2] + "x" + a[3] + ", k " + a[4] + (gz > 1 ? ", " + gz + " splits" : "");
          flops = 2.0 * (Integer) a[2] * (Integer) a[3] * (Integer) a[4];
        } else if (name.equals("sum_splits")) {
          label = "sum_splits " + a[2] + "x" + a[3] + ", " + a[1] + " splits";
        } else if (name.equals("column_sums")) {
          label = "column_sums " + a[1] + "x" + a[2] + ", " + blocks + (blocks == 1 ? " block" : " blocks");
        } else {
          label = name + ", " + blocks + (blocks == 1 ? " block" : " blocks");
        }
      }
      launchLabelled(label, flops, name, gx, gy, gz, block, a);
    }

    /** Launches {@code name}, timed under {@code label} (with {@code flops}) when profiling. */
    private void launchLabelled(String label, double flops, String name, int gx, int gy, int gz, int block,
                                Object... a) {
      int at = 0;
      for (int i = 0; i < a.length; i++) {
        if (a[i] instanceof Long v) {
          at = (at + 7) & ~7;
          args.putLong(at, v);
          at += 8;
        } else if (a[i] instanceof Integer v) {
          args.putInt(at, v);
          at += 4;
        } else if (a[i] instanceof Float v) {
          args.putFloat(at, v);
          at += 4;
        } else {
          throw new IllegalArgumentException("kernel argument " + i + " of " + name + " is " + a[i]);
        }
      }
      argsSize.putLong(0, at);
      KernelProfile p = profile;
      if (p != null) {
        p.before(label, flops);
      }
      cuLaunchKernel(function(name), gx, gy, gz, block, 1, 1, 0, queue, null, extra);
      if (p != null) {
        p.after();
      }
    }

    /**
     * C (m x n, {@code ldc} floats a row) = A B + bias, through a ReLU when {@code relu}, by the
     * wide-tile kernel {@code kernel} ({@code sgemm_wide}, {@code conv_forward},
     * {@code conv_weight_grad} or {@code conv_input_grad}, whose arguments are {@code operands}
     * then C, ldc, the share of k a block sums, bias and relu): its {@code _n32} form (128 x 32
     * tiles) for 32 columns or fewer, which a 64-column tile would compute half empty; its
     * {@code _tf32} form in TF32. Split over k as {@link #kSplit} says for the tiles, the partials
     * added up in order by {@code sum_splits}, which then adds the bias.
     */
    private void wideProduct(String kernel, int mm, int nn, int kk, long c, int ldc, long bias, boolean relu,
                             Object... operands) {
      int tileN = nn <= WN_NARROW ? WN_NARROW : WN;
      int perSplit = kSplit(mm, nn, kk, multiprocessors, WM, tileN, WK);
      int splits = perSplit >= kk ? 1 : (kk + perSplit - 1) / perSplit;
      int gx = (mm + WM - 1) / WM;
      int gy = columnTiles(nn, tileN);
      int r = relu ? 1 : 0;
      if (tileN == WN_NARROW) {
        kernel += "_n32";
      }
      if (tf32) {
        kernel += "_tf32";
      }
      String label = profile == null ? null
          : kernel + " " + mm + "x" + nn + ", k " + kk + (splits > 1 ? ", " + splits + " splits" : "");
      double flops = 2.0 * mm * nn * kk;
      if (splits == 1) {
        launchLabelled(label, flops, kernel, gx, gy, 1, WTHREADS, concat(operands, c, ldc, kk, bias, r));
        return;
      }
      long part = splitK.ensure((long) splits * mm * nn);
      launchLabelled(label, flops, kernel, gx, gy, splits, WTHREADS, concat(operands, part, nn, perSplit, 0L, 0));
      launch("sum_splits", (long) mm * nn, part, splits, mm, nn, 0f, c, ldc, bias, r);
    }

    /**
     * Whether a convolution of geometry {@code g} over {@code n} images goes by Winograd's
     * F(2 x 2, 5 x 5) ({@link #WINOGRAD_PROPERTY}), as a plan from {@code in} channels to {@code out}
     * (the forward pass's, or its input gradient's with the two swapped): stride 1, a 5 x 5 kernel,
     * padding of 4 or less, 8 channels or more each side, float32 on the wide route, and the
     * transformed weights, input and products within what a buffer holds (2^31 - 1 floats).
     */
    private boolean winogradApplies(ConvGeometry g, int n, int in, int out) {
      long tiles = (long) n * ((g.outHeight() + 1) / 2) * ((g.outWidth() + 1) / 2);
      long tilesBack = (long) n * ((g.height() + 1) / 2) * ((g.width() + 1) / 2);
      return winograd && wide && !tf32 && g.stride() == 1 && g.kernelHeight() == 5 && g.kernelWidth() == 5
          && g.padTop() <= 4 && g.padLeft() <= 4 && in >= 8 && out >= 8
          && POINTS * (Math.max(tiles, tilesBack) * (in + out) + (long) in * out) + 8 <= Integer.MAX_VALUE;
    }

    /**
     * y (n images oh x ow x {@code out}) = the stride-1 5 x 5 convolution of x (n images h x w x
     * {@code in}, padded by {@code padTop} and {@code padLeft}, zeros past its edges) by Winograd's
     * F(2 x 2, 5 x 5), + bias (none when 0), through a ReLU when {@code relu}: the weights'
     * transform ({@code flipped}: the layer's weights for an input gradient, see
     * {@code winograd_weights}), the input's, 36 products in the wide tiles (one launch, a point
     * each grid z) and the output's transform with the epilogue.
     */
    private void winogradConvolution(long x, int n, int h, int w, int in, int padTop, int padLeft, int oh, int ow,
                                     int out, long weights, boolean flipped, long y, long bias, boolean relu) {
      int tilesHigh = (oh + 1) / 2;
      int tilesWide = (ow + 1) / 2;
      int tiles = n * tilesHigh * tilesWide;
      // U, then V, then M, each starting on 16 bytes.
      long u = round4((long) POINTS * in * out);
      long v = round4((long) POINTS * tiles * in);
      long base = winogradWork.ensure(u + v + (long) POINTS * tiles * out);
      long uAt = base;
      long vAt = base + 4 * u;
      long mAt = vAt + 4 * v;
      launch("winograd_weights", (long) in * out, weights, in, out, flipped ? 1 : 0, uAt);
      launch("winograd_input", (long) tiles * in, x, n, h, w, in, padTop, padLeft, tilesHigh, tilesWide, vAt);
      int tileN = out <= WN_NARROW ? WN_NARROW : WN;
      String kernel = tileN == WN_NARROW ? "winograd_product_n32" : "winograd_product";
      String label = profile == null ? null : kernel + " " + tiles + "x" + out + ", k " + in + ", " + POINTS + " points";
      launchLabelled(label, 2.0 * POINTS * tiles * out * in, kernel, (tiles + WM - 1) / WM, columnTiles(out, tileN),
          POINTS, WTHREADS, tiles, in, out, vAt, vec(vAt, in), uAt, vec(uAt, out), mAt, out, in, 0L, 0);
      launch("winograd_output", (long) tiles * out, mAt, n, tilesHigh, tilesWide, out, oh, ow, bias, relu ? 1 : 0, y);
    }

    private static long round4(long floats) {
      return (floats + 3) & ~3L;
    }

    /**
     * A product's tiles of columns, its grid's y: its tiles of rows go along x, which takes 2^31 - 1
     * where y takes 65,535 (a step of 10,700 images or more has more tiles of conv1's rows than that).
     */
    private static int columnTiles(int n, int tn) {
      int t = (n + tn - 1) / tn;
      if (t > 65_535) {
        throw new IllegalArgumentException("a product of " + n + " columns has " + t + " tiles of " + tn
            + " columns, more than a grid's y holds (65,535)");
      }
      return t;
    }

    /** 1 where the wide kernels may read a matrix at {@code address}, {@code ld} floats a row, 16 bytes at a time. */
    private static int vec(long address, int ld) {
      return address % 16 == 0 && ld % 4 == 0 ? 1 : 0;
    }

    /** The arguments of conv_forward and conv_weight_grad before C: x, n, the geometry, vec_x, B, ldb, vec_b. */
    private Object[] windows(long x, int n, ConvGeometry g, long b, int filters) {
      return concat(concat(new Object[] {x, n}, geometry(g)), vec(x, g.channels()), b, filters, vec(b, filters));
    }

    /** {@link CudaBackend#product}: the operands uploaded, multiplied by {@link #gemm}, C downloaded. */
    float[] product(boolean ta, boolean tb, int mm, int nn, int kk, float[] a, int lda, float[] b, int ldb) {
      Buffer da = new Buffer();
      Buffer db = new Buffer();
      Buffer dc = new Buffer();
      try {
        da.ensure(a.length);
        db.ensure(b.length);
        dc.ensure((long) mm * nn);
        cuMemcpyHtoD(da.ptr, Pointer.to(a), a.length * 4L);
        cuMemcpyHtoD(db.ptr, Pointer.to(b), b.length * 4L);
        gemm(ta, tb, mm, nn, kk, da.address, lda, db.address, ldb, dc.address, nn);
        float[] c = new float[mm * nn];
        cuMemcpyDtoH(Pointer.to(c), dc.ptr, c.length * 4L);
        return c;
      } finally {
        da.free();
        db.free();
        dc.free();
      }
    }

    /** C = op(A) op(B), row-major, as the CPU kernels' gemm with beta 0; see the next. */
    private void gemm(boolean ta, boolean tb, int mm, int nn, int kk, long a, int lda, long b, int ldb, long c,
                      int ldc) {
      gemm(ta, tb, mm, nn, kk, a, lda, b, ldb, c, ldc, 0L, false);
    }

    /**
     * C = op(A) op(B) + bias (a column's, at device address {@code bias}; none when 0), through
     * a ReLU when {@code relu}; split over k (partials summed in order by a second kernel, which
     * adds the bias) when the product has too few tiles to fill the GPU. In 128 x 64 tiles on the
     * wide route where the product has 256 rows or more and 32 columns or more (128 x 32 tiles for
     * 32 columns).
     */
    private void gemm(boolean ta, boolean tb, int mm, int nn, int kk, long a, int lda, long b, int ldb, long c,
                      int ldc, long bias, boolean relu) {
      if (wide && mm >= 2 * WM && nn >= WN / 2) {
        wideProduct("sgemm_wide", mm, nn, kk, c, ldc, bias, relu, ta ? 1 : 0, tb ? 1 : 0, mm, nn, kk, a, lda,
            vec(a, lda), b, ldb, vec(b, ldb));
        return;
      }
      int perSplit = kSplit(mm, nn, kk, multiprocessors);
      int splits = perSplit >= kk ? 1 : (kk + perSplit - 1) / perSplit;
      int gx = (mm + 63) / 64;
      int gy = columnTiles(nn, 64);
      int r = relu ? 1 : 0;
      if (splits == 1) {
        launchGrid("sgemm", gx, gy, 1, 256, ta ? 1 : 0, tb ? 1 : 0, mm, nn, kk, a, lda, b, ldb, 0f, c, ldc, kk, bias, r);
        return;
      }
      long part = splitK.ensure((long) splits * mm * nn);
      launchGrid("sgemm", gx, gy, splits, 256, ta ? 1 : 0, tb ? 1 : 0, mm, nn, kk, a, lda, b, ldb, 0f, part, nn,
          perSplit, 0L, 0);
      launch("sum_splits", (long) mm * nn, part, splits, mm, nn, 0f, c, ldc, bias, r);
    }

    private Object[] geometry(ConvGeometry g) {
      return new Object[] {g.height(), g.width(), g.channels(), g.kernelHeight(), g.kernelWidth(), g.stride(),
          g.padTop(), g.padLeft(), g.outHeight(), g.outWidth()};
    }

    private static Object[] concat(Object[] a, Object... b) {
      Object[] r = java.util.Arrays.copyOf(a, a.length + b.length);
      System.arraycopy(b, 0, r, a.length, b.length);
      return r;
    }

    /**
     * Queues the forward pass of {@code n} samples in {@code input} (with, while training, each
     * sample's global index at {@code samples}, the dropout layers' seeds at {@link #seedsAt});
     * returns the logits.
     */
    private Buffer forward(int n, boolean training, long samples) {
      Buffer in = input;
      long x = input.address;
      for (int i = 0; i < layers.size(); i++) {
        Layer l = layers.get(i);
        int outSize = l.outputShape().size();
        Buffer y = acts.get(i);
        masked[i] = false;
        if (l instanceof Flatten || reluInPrevious[i]
            || (l instanceof Dropout dr && (!training || dr.keepProb() == 1f))) {
          // The identity on these floats, or a ReLU already applied: the next layer reads this
          // layer's input.
          outs[i] = in;
          continue;
        }
        y.ensure((long) n * outSize);
        if (l instanceof Conv2d c) {
          ConvGeometry g = c.geometry();
          int rows = n * g.outputPixels();
          int filters = l.outputShape().channels();
          long weights = params.at(l.paramOffset());
          long bias = params.at(l.paramOffset() + c.weightCount());
          if (winogradApplies(g, n, g.channels(), filters)) {
            winogradConvolution(x, n, g.height(), g.width(), g.channels(), g.padTop(), g.padLeft(), g.outHeight(),
                g.outWidth(), filters, weights, false, y.address, bias, reluNext(i));
          } else if (wide) {
            wideProduct("conv_forward", rows, filters, g.patchSize(), y.address, filters, bias, reluNext(i),
                windows(x, n, g, weights, filters));
          } else {
            long col = aux.get(i).ensure((long) rows * g.patchSize());
            int rowsPerBlock = Math.max(1, THREADS / g.patchSize());
            launchGrid("im2col", (rows + rowsPerBlock - 1) / rowsPerBlock, 1, 1, THREADS,
                concat(concat(new Object[] {x, col, n}, geometry(g)), rowsPerBlock));
            gemm(false, false, rows, filters, g.patchSize(), col, g.patchSize(), weights, filters, y.address, filters,
                bias, reluNext(i));
          }
        } else if (l instanceof Dense d) {
          int inSize = l.inputShape().size();
          gemm(false, false, n, outSize, inSize, x, inSize, params.at(l.paramOffset()), outSize, y.address, outSize,
              params.at(l.paramOffset() + d.weightCount()), reluNext(i));
        } else if (l instanceof MaxPool2d p) {
          long argmax = aux.get(i).ensure((long) n * outSize);
          launch("max_pool", (long) n * outSize, concat(new Object[] {x, y.address, argmax, n}, geometry(p.geometry())));
        } else if (l instanceof Relu) {
          launch("relu", (long) n * outSize, x, y.address, n * outSize);
        } else if (l instanceof Dropout dr) {
          // The CPU layer's masks (Dropout.fillMask), so both backends drop the same units.
          long mask = aux.get(i).ensure((long) n * outSize);
          launch("dropout", (long) n * outSize, x, y.address, mask, n, outSize, samples, seedsAt + 8L * dropoutSlot[i],
              Dropout.keepBelow(dr.keepProb()), 1f / dr.keepProb());
          masked[i] = true;
        } else {
          throw new UnsupportedOperationException("the GPU backend has no kernels for layer " + l);
        }
        outs[i] = y;
        in = y;
        x = y.address;
      }
      return in;
    }

    /**
     * out = the column sums of {@code rows x cols} at {@code dy} (a bias's gradient): in chunks of
     * rows (at least 64) when a block per 32 columns would leave multiprocessors idle, added up in
     * order by {@code sum_splits}.
     */
    private void columnSums(long dy, int rows, int cols, long out) {
      int tiles = (cols + 31) / 32;
      int chunks = Math.max(1, Math.min((2 * multiprocessors + tiles - 1) / tiles, (rows + 63) / 64));
      int chunk = (rows + chunks - 1) / chunks;
      chunks = (rows + chunk - 1) / chunk;
      if (chunks == 1) {
        launchGrid("column_sums", tiles, 1, 1, 256, dy, rows, cols, rows, out);
        return;
      }
      long part = splitK.ensure((long) chunks * cols);
      launchGrid("column_sums", tiles, chunks, 1, 256, dy, rows, cols, chunk, part);
      launch("sum_splits", cols, part, chunks, 1, cols, 0f, out, cols, 0L, 0);
    }

    private boolean reluNext(int i) {
      return i + 1 < layers.size() && reluInPrevious[i + 1];
    }

    @Override
    public SoftmaxCrossEntropy.Result computeGradients(float[] images, int[] y, float[] weights, int n,
                                                       float lossScale, long seed, long[] firsts, int[] lengths) {
      try {
        return step(images, y, weights, n, lossScale, seed, firsts, lengths);
      } catch (NoMemory e) {
        GpuOutOfMemoryException error = outOfMemory(e, "a training step on a batch of " + n + " images",
            "smaller batches need less");
        releaseBatchMemory();
        throw error;
      }
    }

    /**
     * After an allocation failed: frees what steps and inference allocate by the batch (what the
     * failed one had grown stays held otherwise), and the captured step, which used it. The
     * parameters, gradients and Adam's moments stay; the next step or inference allocates anew.
     */
    private void releaseBatchMemory() {
      cuCtxSynchronize();
      if (graph != null) {
        graph.destroy();
        graph = null;
      }
      eagerKey = null;
      for (Buffer b : List.of(input, batchInfo, dLogits, metrics, scratch, splitK, winogradWork, factors)) {
        b.free();
      }
      for (List<Buffer> l : List.of(acts, dacts, aux)) {
        l.forEach(Buffer::free);
      }
      staging.free();
      results.free();
    }

    private SoftmaxCrossEntropy.Result step(float[] images, int[] y, float[] weights, int n, float lossScale, long seed,
                                            long[] firsts, int[] lengths) {
      cuCtxSetCurrent(context);
      // Until this step ends well, it has no factors to copy out.
      lastSamples = -1;
      int classes = net.spec().numClasses();
      for (int s = 0; s < n; s++) {
        if (y[s] < 0 || y[s] >= classes) {
          throw new IllegalArgumentException("label " + y[s] + " of sample " + s + " is outside [0, " + classes + ")");
        }
      }
      SoftmaxCrossEntropy.requireWeights(weights, n);
      int inSize = net.spec().inputShape().size();
      long imageBytes = (long) n * inSize * 4L;
      // The images, then one upload for the labels, the samples' global indices (longs, as the
      // GPU reads them), which the dropout kernel needs, and the step's values (each dropout
      // layer's seed, each sample's loss scale); both from pinned memory, queued.
      int samplesAt = (n + 1) / 2 * 2;
      int seedsIntsAt = samplesAt + 2 * n;
      int scaleAt = seedsIntsAt + 2 * dropouts;
      int infoInts = scaleAt + n;
      ByteBuffer host = staging.ensure(imageBytes + infoInts * 4L);
      host.asFloatBuffer().put(images, 0, n * inSize);
      host.position((int) imageBytes);
      host.asIntBuffer().put(y, 0, n);
      host.position((int) imageBytes + samplesAt * 4);
      host.asLongBuffer().put(Dropout.sampleIndices(n, firsts, lengths));
      for (int i = 0; i < layers.size(); i++) {
        if (dropoutSlot[i] >= 0) {
          host.putLong((int) imageBytes + (seedsIntsAt + 2 * dropoutSlot[i]) * 4,
              Dropout.mixSeed(seed * 0x9E3779B97F4A7C15L + i));
        }
      }
      for (int s = 0; s < n; s++) {
        // The product in float, as the CPU takes it.
        host.putFloat((int) imageBytes + (scaleAt + s) * 4, weights == null ? lossScale : lossScale * weights[s]);
      }
      input.ensure((long) n * inSize);
      batchInfo.ensure(infoInts);
      dLogits.ensure((long) n * classes);
      metrics.ensure(3L * n);
      seedsAt = batchInfo.at(seedsIntsAt);
      String key = graphKey(n);
      if (graph != null && !graph.key().equals(key)) {
        graph.destroy();
        graph = null;
      }
      if (graph == null && key != null && key.equals(eagerKey)) {
        graph = capture(n, imageBytes, infoInts, samplesAt, scaleAt, key);
      }
      if (graph != null) {
        cuGraphLaunch(graph.exec(), graphStream);
      } else {
        queueStep(n, imageBytes, infoInts, samplesAt, scaleAt);
        // A first step may allocate: the key after it is what the next step will compare.
        eagerKey = graphKey(n);
      }
      lastSamples = n;
      // The step's one wait: a copy to the host follows the kernels queued before it.
      byte[] out = new byte[12 * n];
      cuMemcpyDtoH(Pointer.to(out), metrics.ptr, out.length);
      java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(out).order(java.nio.ByteOrder.LITTLE_ENDIAN);
      double total = 0;
      int right = 0;
      for (int s = 0; s < n; s++) {
        total += weights == null ? b.getDouble(8 * s) : weights[s] * b.getDouble(8 * s);
        right += b.getInt(8 * n + 4 * s);
      }
      return new SoftmaxCrossEntropy.Result(total, right, n);
    }

    /**
     * Queues a training step's work after its batch is staged: the two uploads, the forward pass,
     * the loss and the backward pass, on {@link #queue}.
     */
    private void queueStep(int n, long imageBytes, int infoInts, int samplesAt, int scaleAt) {
      staging.upload(0, imageBytes, input, queue);
      staging.upload(imageBytes, infoInts * 4L, batchInfo, queue);
      long logits = forward(n, true, batchInfo.at(samplesAt)).address;
      launch("softmax_xent", n, logits, batchInfo.address, n, net.spec().numClasses(), batchInfo.at(scaleAt),
          dLogits.address, metrics.address, metrics.at(2L * n));
      backward(n);
    }

    /**
     * What a captured step depends on besides its staged values: the batch size, the dropout
     * layers' keep probabilities (a layer keeping everything is skipped), the addresses of the
     * device buffers the step uses (buffers only grow, so an address unchanged is a buffer large
     * enough) and the pinned memory's allocation; null where steps are not captured (CUDA graphs
     * off or failed, or a profile attached, which times each launch).
     */
    private String graphKey(int n) {
      if (!graphs || graphsFailed || profile != null) {
        return null;
      }
      StringBuilder k = new StringBuilder().append(n);
      for (Layer l : layers) {
        if (l instanceof Dropout dr) {
          k.append('/').append(dr.keepProb());
        }
      }
      k.append('@').append(staging.allocations);
      for (Buffer b : List.of(params, grads, input, batchInfo, dLogits, metrics, scratch, splitK, winogradWork)) {
        k.append(':').append(b.address);
      }
      for (List<Buffer> list : List.of(acts, dacts, aux)) {
        for (Buffer b : list) {
          k.append(':').append(b.address);
        }
      }
      return k.toString();
    }

    /**
     * Captures a training step ({@link #queueStep}) as a CUDA graph on {@link #graphStream} and
     * instantiates it; nothing of it runs. Null, with steps launched one by one from then on, where
     * the driver refuses the capture (the reason is logged once).
     */
    private StepGraph capture(int n, long imageBytes, int infoInts, int samplesAt, int scaleAt, String key) {
      CUgraph g = new CUgraph();
      try {
        if (graphStream == null) {
          graphStream = new CUstream();
          // A blocking stream: the copies and the update queued on the legacy stream wait for
          // the graph, and the graph for them.
          cuStreamCreate(graphStream, CUstream_flags.CU_STREAM_DEFAULT);
        }
        queue = graphStream;
        // Thread-local: a capture in the global mode would make the driver refuse another
        // thread's copies and waits meanwhile (another runner's, in the same executor).
        cuStreamBeginCapture(graphStream, CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
        try {
          queueStep(n, imageBytes, infoInts, samplesAt, scaleAt);
        } catch (CudaException e) {
          try {
            cuStreamEndCapture(graphStream, g);
          } catch (CudaException ended) {
            e.addSuppressed(ended);
          }
          throw e;
        }
        cuStreamEndCapture(graphStream, g);
        CUgraphExec exec = new CUgraphExec();
        try {
          cuGraphInstantiate(exec, g, 0);
        } finally {
          cuGraphDestroy(g);
        }
        return new StepGraph(key, exec);
      } catch (CudaException e) {
        graphsFailed = true;
        LOG.log(System.Logger.Level.WARNING, "the CUDA driver refused to capture a training step as a graph ("
            + e.getMessage() + "); steps are launched kernel by kernel (" + GRAPHS_PROPERTY + "=false does so"
            + " without trying)");
        return null;
      } finally {
        queue = null;
      }
    }

    private void backward(int n) {
      long dy = dLogits.address;
      Buffer dyBuffer = dLogits;
      for (int i = layers.size() - 1; i >= 0; i--) {
        Layer l = layers.get(i);
        if (i == factorLayer) {
          factorDy = dyBuffer;
        }
        long x = i == 0 ? input.address : outs[i - 1].address;
        int inSize = l.inputShape().size();
        int outSize = l.outputShape().size();
        boolean needDx = i > 0;
        if (needDx && (l instanceof Flatten || (l instanceof Dropout && !masked[i])
            || (l instanceof Relu && reluInPoolBackward[i]))) {
          continue;  // the identity, or a ReLU the pool after it did: its input's gradient is dy
        }
        long dx = needDx ? dacts.get(i).ensure((long) n * inSize) : 0L;
        if (l instanceof Conv2d c) {
          ConvGeometry g = c.geometry();
          int rows = n * g.outputPixels();
          int filters = outSize / g.outputPixels();
          int patch = g.patchSize();
          // dW = col^T dy (patch x filters, the weights' layout), col the patch matrix (gathered
          // from x on the wide route, im2col's in the forward pass otherwise); db = column sums of dy.
          if (wide) {
            wideProduct("conv_weight_grad", patch, filters, rows, grads.at(l.paramOffset()), filters, 0L, false,
                windows(x, n, g, dy, filters));
          } else {
            gemm(true, false, patch, filters, rows, aux.get(i).address, patch, dy, filters, grads.at(l.paramOffset()),
                filters);
          }
          columnSums(dy, rows, filters, grads.at(l.paramOffset() + c.weightCount()));
          if (needDx && winogradApplies(g, n, filters, g.channels())) {
            // The same plan over dy (padded by 4 - pad), the weights flipped: a full correlation.
            winogradConvolution(dy, n, g.outHeight(), g.outWidth(), filters, g.kernelHeight() - 1 - g.padTop(),
                g.kernelWidth() - 1 - g.padLeft(), g.height(), g.width(), g.channels(), params.at(l.paramOffset()), true,
                dx, 0L, false);
          } else if (needDx && wide && g.stride() == 1) {
            // dx = the windows of dy (padded to give one for every input pixel) times the weights
            // flipped: no patch matrix of the input's size written and read back.
            wideProduct("conv_input_grad", n * g.height() * g.width(), g.channels(), g.kernelHeight() * g.kernelWidth()
                * filters, dx, g.channels(), 0L, false, concat(concat(new Object[] {dy, n}, geometry(g)),
                vec(dy, filters), params.at(l.paramOffset()), filters, vec(params.at(l.paramOffset()), filters)));
          } else if (needDx) {
            scratch.ensure((long) rows * patch);
            gemm(false, true, rows, patch, filters, dy, filters, params.at(l.paramOffset()), filters, scratch.address,
                patch);
            launch("col2im", (long) n * inSize, concat(new Object[] {scratch.address, dx, n}, geometry(g)));
          }
        } else if (l instanceof Dense d) {
          gemm(true, false, inSize, outSize, n, x, inSize, dy, outSize, grads.at(l.paramOffset()), outSize);
          columnSums(dy, n, outSize, grads.at(l.paramOffset() + d.weightCount()));
          if (needDx) {
            gemm(false, true, n, inSize, outSize, dy, outSize, params.at(l.paramOffset()), outSize, dx, inSize);
          }
        } else if (needDx && l instanceof MaxPool2d p) {
          ConvGeometry g = p.geometry();
          if (g.stride() >= g.kernelHeight() && g.stride() >= g.kernelWidth()) {
            // Windows apart: each input gathers its one window's gradient, and a ReLU before the
            // pool (whose output is this pool's input) is done here too.
            boolean relu = layers.get(i - 1) instanceof Relu;
            launch("max_pool_backward_gather", (long) n * inSize, concat(new Object[] {dy, aux.get(i).address, x, dx, n},
                concat(geometry(g), relu ? 1 : 0)));
            reluInPoolBackward[i - 1] = relu;
          } else {
            cuMemsetD32Async(dacts.get(i).ptr, 0, (long) n * inSize, queue);
            launch("max_pool_backward", (long) n * outSize, dy, aux.get(i).address, dx, n * outSize);
            reluInPoolBackward[i - 1] = false;
          }
        } else if (needDx && l instanceof Relu) {
          launch("relu_backward", (long) n * outSize, outs[i].address, dy, dx, n * outSize);
        } else if (needDx && l instanceof Dropout) {
          launch("multiply", (long) n * outSize, dy, aux.get(i).address, dx, n * outSize);
        }
        dy = dx;
        dyBuffer = needDx ? dacts.get(i) : null;
      }
    }

    @Override
    public void scaleGradients(float factor) {
      cuCtxSetCurrent(context);
      launch("scale", paramCount, grads.address, paramCount, factor);
    }

    @Override
    public void applyGradients(Optimizer optimizer) {
      cuCtxSetCurrent(context);
      if (optimizer instanceof Adam a && onDevice != optimizer) {
        // First step with this optimizer here: its moments (zero, or from a checkpoint) go up.
        try {
          upload(a.moments()[0], m);
          upload(a.moments()[1], v);
        } catch (NoMemory e) {
          m.free();
          v.free();
          throw outOfMemory(e, "Adam's moments", null);
        }
        onDevice = optimizer;
      }
      optimizer.beginStep();
      if (optimizer instanceof Adam a) {
        // One thread per 4 parameters (the kernel's 16-byte accesses).
        launch("adam", (paramCount + 3) / 4, params.address, grads.address, m.address, v.address, paramCount, a.stepSize(), Adam.BETA1, Adam.BETA2,
            Adam.EPSILON);
      } else if (optimizer instanceof Sgd) {
        launch("sgd", paramCount, params.address, grads.address, paramCount, optimizer.currentLearningRate());
      } else {
        throw new UnsupportedOperationException("the GPU backend has no kernel for optimizer " + optimizer.name());
      }
      // No wait: the next copy to or from the device is queued behind the update.
    }

    @Override
    public void syncOptimizer(Optimizer optimizer) {
      if (optimizer instanceof Adam a && onDevice == optimizer) {
        download(m, a.moments()[0], paramCount);
        download(v, a.moments()[1], paramCount);
      }
    }

    @Override
    public void predictLogits(float[] images, int n, float[] out) {
      predictLogits(images, 0, n, out);
    }

    /** Each chunk of the images goes from {@code images} straight into the pinned staging memory. */
    @Override
    public void predictLogits(float[] images, int from, int n, float[] out) {
      ModelRunner.requirePredictRange(net.spec(), images, from, n, out);
      // Inference overwrites the activations: the last step's factors are gone.
      lastSamples = -1;
      // Where the GPU has too little memory for a chunk: half as many images at a time, down to 1.
      for (;;) {
        try {
          predictOnDevice(images, from, n, out, predictChunk);
          return;
        } catch (NoMemory e) {
          int chunk = Math.min(predictChunk, n);
          int part = partOf(chunk);
          GpuOutOfMemoryException error = outOfMemory(e, "inference, " + chunk + " images at a time"
              + (part < chunk ? " (in parts of " + part + ")" : ""), null);
          releaseBatchMemory();
          if (chunk == 1) {
            throw error;
          }
          predictChunk = chunk / 2;
          LOG.log(System.Logger.Level.WARNING, error.getMessage() + "; inference goes on " + predictChunk
              + " images at a time");
        }
      }
    }

    private void predictOnDevice(float[] images, int from, int n, float[] out, int chunk) {
      cuCtxSetCurrent(context);
      int inSize = net.spec().inputShape().size();
      int classes = net.spec().numClasses();
      for (int s = 0; s < n; s += chunk) {
        int k = Math.min(chunk, n - s);
        int part = partOf(k);
        if (part < k) {
          predictPipelined(images, from + s, k, out, s * classes, part);
          continue;
        }
        input.ensure((long) k * inSize);
        staging.ensure((long) k * inSize * 4L).asFloatBuffer().put(images, (from + s) * inSize, k * inSize);
        staging.upload(0, (long) k * inSize * 4L, input, null);
        Buffer logits = forward(k, false, 0L);
        cuMemcpyDtoH(Pointer.to(out).withByteOffset((long) s * classes * 4L), logits.ptr, (long) k * classes * 4L);
      }
    }

    /**
     * The images a part of a chunk of {@code k} holds (the last part may hold fewer): {@code k} where
     * the chunk goes whole (fewer than twice {@link #inferencePart}, or pipelining off), else the
     * chunk split evenly into as many parts as keep each at {@link #inferencePart} or more.
     */
    private int partOf(int k) {
      int parts = inferencePart == 0 ? 1 : Math.max(1, k / inferencePart);
      return (k + parts - 1) / parts;
    }

    /**
     * Inference in parts of {@code part} images, the host staging each part into one half of the
     * pinned memory while the GPU runs the part before (from the other half): the host waits only
     * before refilling a half, for the copy from it two parts back, and once at the end (for this
     * queue's work alone, not another runner's). The parts' logits come back into pinned memory,
     * queued behind their forward passes, and go into {@code out} from {@code outAt} after that
     * wait. The parts run one after another on the device, as a batch of {@code part} images
     * each, in the device buffers of one forward pass.
     */
    private void predictPipelined(float[] images, int from, int n, float[] out, int outAt, int part) {
      int inSize = net.spec().inputShape().size();
      int classes = net.spec().numClasses();
      long half = (long) part * inSize * 4L;
      input.ensure((long) part * inSize);
      ByteBuffer host = staging.ensure(2 * half);
      ByteBuffer back = results.ensure((long) n * classes * 4L);
      if (marks == null) {
        CUevent[] events = {new CUevent(), new CUevent(), new CUevent()};
        for (CUevent e : events) {
          cuEventCreate(e, CUevent_flags.CU_EVENT_DISABLE_TIMING);
        }
        marks = events;
      }
      for (int s = 0, p = 0; s < n; s += part, p++) {
        int k = Math.min(part, n - s);
        int h = p % 2;
        if (p >= 2) {
          cuEventSynchronize(marks[h]);
        }
        host.position((int) (h * half));
        host.asFloatBuffer().put(images, (from + s) * inSize, k * inSize);
        staging.upload(h * half, (long) k * inSize * 4L, input, null);
        cuEventRecord(marks[h], null);
        results.download(forward(k, false, 0L), (long) s * classes * 4L, (long) k * classes * 4L);
      }
      cuEventRecord(marks[2], null);
      cuEventSynchronize(marks[2]);
      back.asFloatBuffer().get(out, outAt, n * classes);
    }

    @Override
    public void close() {
      cuCtxSetCurrent(context);
      // The last update may still be queued.
      cuCtxSynchronize();
      for (Buffer b : List.of(params, grads, m, v, input, batchInfo, dLogits, metrics, scratch, splitK, winogradWork,
          factors)) {
        b.free();
      }
      for (List<Buffer> l : List.of(acts, dacts, aux)) {
        l.forEach(Buffer::free);
      }
      staging.free();
      results.free();
      if (marks != null) {
        for (CUevent e : marks) {
          cuEventDestroy(e);
        }
        marks = null;
      }
      if (graph != null) {
        graph.destroy();
        graph = null;
      }
      if (graphStream != null) {
        cuStreamDestroy(graphStream);
        graphStream = null;
      }
    }
  }

  /** A captured training step, instantiated, and the {@link Runner#graphKey} it was captured under. */
  private record StepGraph(String key, CUgraphExec exec) {
    void destroy() {
      cuGraphExecDestroy(exec);
    }
  }
}
