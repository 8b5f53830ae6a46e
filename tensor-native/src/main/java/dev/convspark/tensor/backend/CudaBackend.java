package dev.convspark.tensor.backend;

import static jcuda.driver.JCudaDriver.cuCtxCreate;
import static jcuda.driver.JCudaDriver.cuCtxDestroy;
import static jcuda.driver.JCudaDriver.cuCtxSetCurrent;
import static jcuda.driver.JCudaDriver.cuCtxSynchronize;
import static jcuda.driver.JCudaDriver.cuDeviceGet;
import static jcuda.driver.JCudaDriver.cuDeviceGetCount;
import static jcuda.driver.JCudaDriver.cuDeviceGetName;
import static jcuda.driver.JCudaDriver.cuDriverGetVersion;
import static jcuda.driver.JCudaDriver.cuInit;
import static jcuda.driver.JCudaDriver.cuLaunchKernel;
import static jcuda.driver.JCudaDriver.cuMemAlloc;
import static jcuda.driver.JCudaDriver.cuMemFree;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;
import static jcuda.driver.JCudaDriver.cuMemsetD32;
import static jcuda.driver.JCudaDriver.cuModuleGetFunction;
import static jcuda.driver.JCudaDriver.cuModuleLoadData;

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
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import jcuda.CudaException;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUfunction;
import jcuda.driver.CUmodule;
import jcuda.driver.JCudaDriver;

/**
 * The GPU backend: the CUDA driver API through JCuda, with convspark's own kernels
 * ({@code src/main/cuda/convspark.cu}, committed as PTX and loaded with {@code cuModuleLoadData}).
 * Parameters, gradients, optimizer moments and activations stay on the device between steps; a
 * training step uploads the batch (and the dropout masks, drawn on the host with the CPU's
 * generator so both backends drop the same units), and only the gradients (for the allreduce),
 * the loss and the accuracy come back.
 *
 * <p>Not yet run on a GPU: the project's build machines have none. {@code gpu-check.sh} runs the
 * CPU-versus-GPU parity checks and the benchmark where one exists.
 */
public final class CudaBackend implements Backend {

  /** The kernels, as a classpath resource. */
  static final String PTX = "/dev/convspark/tensor/cuda/convspark.ptx";
  private static final int THREADS = 256;

  private final CUcontext context;
  private final CUmodule module;
  private final Map<String, CUfunction> functions = new HashMap<>();
  private final String description;

  private CudaBackend(CUcontext context, CUmodule module, String description) {
    this.context = context;
    this.module = module;
    this.description = description;
  }

  /**
   * Opens GPU number {@code ordinal}.
   *
   * @throws IllegalStateException saying why no GPU can be used: no CUDA driver library, no such
   *                               device, or kernels the driver refuses
   */
  public static CudaBackend create(int ordinal) {
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
      CUcontext ctx = new CUcontext();
      cuCtxCreate(ctx, 0, dev);
      CUmodule module = new CUmodule();
      try {
        cuModuleLoadData(module, ptx());
      } catch (CudaException e) {
        cuCtxDestroy(ctx);
        throw new IllegalStateException("the CUDA driver (version " + version[0] / 1000 + "." + version[0] % 1000 / 10
            + ") refused convspark's kernels (" + e.getMessage() + "); they need a CUDA 12.0 or newer driver", e);
      }
      String device = new String(name, java.nio.charset.StandardCharsets.US_ASCII).trim().replace("\0", "");
      return new CudaBackend(ctx, module, "gpu:" + ordinal + " (" + device + ", CUDA driver " + version[0] / 1000 + "."
          + version[0] % 1000 / 10 + ")");
    } catch (LinkageError e) {
      // No libcuda.so.1 (UnsatisfiedLinkError first, NoClassDefFoundError on later calls).
      String first = String.valueOf(e).lines().findFirst().orElse("");
      throw new IllegalStateException("no CUDA driver library (libcuda.so.1) could be loaded (" + first + ")", e);
    } catch (CudaException e) {
      throw new IllegalStateException("the CUDA driver failed: " + e.getMessage(), e);
    }
  }

  /** The PTX text, NUL-terminated as {@code cuModuleLoadData} wants it. */
  static byte[] ptx() {
    try (InputStream in = CudaBackend.class.getResourceAsStream(PTX)) {
      if (in == null) {
        throw new IllegalStateException("the kernels " + PTX + " are missing from the classpath");
      }
      byte[] b = in.readAllBytes();
      return java.util.Arrays.copyOf(b, b.length + 1);
    } catch (IOException e) {
      throw new IllegalStateException("cannot read " + PTX + ": " + e.getMessage(), e);
    }
  }

  @Override
  public String describe() {
    return description;
  }

  @Override
  public ModelRunner open(ModelSpec spec) {
    cuCtxSetCurrent(context);
    return new Runner(new Network(spec));
  }

  @Override
  public void close() {
    cuCtxDestroy(context);
  }

  private CUfunction function(String name) {
    return functions.computeIfAbsent(name, n -> {
      CUfunction f = new CUfunction();
      cuModuleGetFunction(f, module, n);
      return f;
    });
  }

  /** Launches {@code name} over {@code count} threads in blocks of 256, with the given arguments. */
  private void launch(String name, long count, Object... args) {
    if (count <= 0) {
      return;
    }
    launchGrid(name, (int) ((count + THREADS - 1) / THREADS), 1, THREADS, args);
  }

  private void launchGrid(String name, int gx, int gy, int block, Object... args) {
    Pointer[] p = new Pointer[args.length];
    for (int i = 0; i < args.length; i++) {
      Object a = args[i];
      p[i] = a instanceof CUdeviceptr d ? Pointer.to(d)
          : a instanceof Integer v ? Pointer.to(new int[] {v})
          : a instanceof Float v ? Pointer.to(new float[] {v})
          : null;
      if (p[i] == null) {
        throw new IllegalArgumentException("kernel argument " + i + " of " + name + " has type " + a.getClass());
      }
    }
    cuLaunchKernel(function(name), gx, gy, 1, block, 1, 1, 0, null, Pointer.to(p), null);
  }

  /** A device buffer of floats (or ints), grown on demand. */
  private static final class Buffer {
    CUdeviceptr ptr;
    long capacity;

    CUdeviceptr ensure(long elements) {
      if (elements > capacity) {
        free();
        ptr = new CUdeviceptr();
        cuMemAlloc(ptr, Math.max(1, elements) * 4L);
        capacity = elements;
      }
      return ptr;
    }

    CUdeviceptr at(long element) {
      return ptr.withByteOffset(element * 4L);
    }

    void free() {
      if (ptr != null) {
        cuMemFree(ptr);
        ptr = null;
        capacity = 0;
      }
    }
  }

  private final class Runner implements ModelRunner {
    private final Network net;
    private final List<Layer> layers;
    private final int paramCount;
    private final Buffer params = new Buffer();
    private final Buffer grads = new Buffer();
    private final Buffer m = new Buffer();
    private final Buffer v = new Buffer();
    private final Buffer input = new Buffer();
    private final Buffer labels = new Buffer();
    private final Buffer dLogits = new Buffer();
    private final Buffer loss = new Buffer();
    private final Buffer correct = new Buffer();
    private final Buffer scratch = new Buffer();
    private final Buffer scratch2 = new Buffer();
    private final List<Buffer> acts = new ArrayList<>();
    private final List<Buffer> dacts = new ArrayList<>();
    private final List<Buffer> aux = new ArrayList<>();
    private Optimizer onDevice;

    Runner(Network net) {
      this.net = net;
      this.layers = net.layers();
      this.paramCount = net.paramCount();
      params.ensure(paramCount);
      grads.ensure(paramCount);
      for (int i = 0; i < layers.size(); i++) {
        acts.add(new Buffer());
        dacts.add(new Buffer());
        aux.add(new Buffer());
      }
      upload(net.params(), params);
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

    /** C = op(A) op(B) (+ beta C), row-major, as the CPU kernels' gemm. */
    private void gemm(boolean ta, boolean tb, int mm, int nn, int kk, CUdeviceptr a, int lda, CUdeviceptr b, int ldb,
                      float beta, CUdeviceptr c, int ldc) {
      launchGrid("sgemm", (nn + 63) / 64, (mm + 63) / 64, 256, ta ? 1 : 0, tb ? 1 : 0, mm, nn, kk, a, lda, b, ldb, beta,
          c, ldc);
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

    /** The forward pass of {@code n} samples in {@code input}; returns the logits' buffer. */
    private Buffer forward(int n, boolean training, long seed, long[] firsts, int[] lengths) {
      CUdeviceptr x = input.ptr;
      for (int i = 0; i < layers.size(); i++) {
        Layer l = layers.get(i);
        int outSize = l.outputShape().size();
        Buffer y = acts.get(i);
        y.ensure((long) n * outSize);
        long layerSeed = seed * 0x9E3779B97F4A7C15L + i;
        if (l instanceof Conv2d c) {
          ConvGeometry g = c.geometry();
          int rows = n * g.outputPixels();
          int filters = l.outputShape().channels();
          launch("fill_rows", (long) rows * filters, params.at(l.paramOffset() + c.weightCount()), y.ptr, rows, filters);
          Buffer col = aux.get(i);
          col.ensure((long) rows * g.patchSize());
          launch("im2col", (long) rows * g.patchSize(), concat(new Object[] {x, col.ptr, n}, geometry(g)));
          gemm(false, false, rows, filters, g.patchSize(), col.ptr, g.patchSize(), params.at(l.paramOffset()), filters, 1f,
              y.ptr, filters);
        } else if (l instanceof Dense d) {
          int in = l.inputShape().size();
          launch("fill_rows", (long) n * outSize, params.at(l.paramOffset() + d.weightCount()), y.ptr, n, outSize);
          gemm(false, false, n, outSize, in, x, in, params.at(l.paramOffset()), outSize, 1f, y.ptr, outSize);
        } else if (l instanceof MaxPool2d p) {
          Buffer argmax = aux.get(i);
          argmax.ensure((long) n * outSize);
          launch("max_pool", (long) n * outSize, concat(new Object[] {x, y.ptr, argmax.ptr, n}, geometry(p.geometry())));
        } else if (l instanceof Relu) {
          launch("relu", (long) n * outSize, x, y.ptr, n * outSize);
        } else if (l instanceof Dropout dr) {
          Buffer mask = aux.get(i);
          int size = n * outSize;
          if (!training || dr.keepProb() == 1f) {
            mask.free();
            cuMemcpyDtoDFloats(x, y.ptr, size);
          } else {
            // The CPU layer's masks, so both backends drop the same units for the same seed.
            float[] h = new float[size];
            Dropout.fillMasks(layerSeed, dr.keepProb(), h, outSize, n, firsts, lengths);
            upload(h, mask);
            launch("multiply", size, x, mask.ptr, y.ptr, size);
          }
        } else if (l instanceof Flatten) {
          cuMemcpyDtoDFloats(x, y.ptr, n * outSize);
        } else {
          throw new UnsupportedOperationException("the GPU backend has no kernels for layer " + l);
        }
        x = y.ptr;
      }
      return acts.get(layers.size() - 1);
    }

    private void cuMemcpyDtoDFloats(CUdeviceptr src, CUdeviceptr dst, long count) {
      JCudaDriver.cuMemcpyDtoD(dst, src, count * 4L);
    }

    @Override
    public SoftmaxCrossEntropy.Result computeGradients(float[] images, int[] y, int n, float lossScale, long seed,
                                                       long[] firsts, int[] lengths) {
      cuCtxSetCurrent(context);
      int classes = net.spec().numClasses();
      for (int s = 0; s < n; s++) {
        if (y[s] < 0 || y[s] >= classes) {
          throw new IllegalArgumentException("label " + y[s] + " of sample " + s + " is outside [0, " + classes + ")");
        }
      }
      int inSize = net.spec().inputShape().size();
      input.ensure((long) n * inSize);
      cuMemcpyHtoD(input.ptr, Pointer.to(images), (long) n * inSize * 4L);
      labels.ensure(n);
      cuMemcpyHtoD(labels.ptr, Pointer.to(y), n * 4L);
      Buffer logits = forward(n, true, seed, firsts, lengths);
      dLogits.ensure((long) n * classes);
      loss.ensure(2L * n);
      correct.ensure(n);
      launch("softmax_xent", n, logits.ptr, labels.ptr, n, classes, lossScale, dLogits.ptr, loss.ptr, correct.ptr);
      double[] l = new double[n];
      int[] ok = new int[n];
      cuMemcpyDtoH(Pointer.to(l), loss.ptr, n * 8L);
      cuMemcpyDtoH(Pointer.to(ok), correct.ptr, n * 4L);
      double total = 0;
      int right = 0;
      for (int s = 0; s < n; s++) {
        total += l[s];
        right += ok[s];
      }
      backward(n);
      cuCtxSynchronize();
      return new SoftmaxCrossEntropy.Result(total, right, n);
    }

    private void backward(int n) {
      CUdeviceptr dy = dLogits.ptr;
      for (int i = layers.size() - 1; i >= 0; i--) {
        Layer l = layers.get(i);
        CUdeviceptr x = i == 0 ? input.ptr : acts.get(i - 1).ptr;
        int inSize = l.inputShape().size();
        int outSize = l.outputShape().size();
        boolean needDx = i > 0;
        Buffer dxBuf = dacts.get(i);
        CUdeviceptr dx = needDx ? dxBuf.ensure((long) n * inSize) : null;
        if (l instanceof Conv2d c) {
          ConvGeometry g = c.geometry();
          int rows = n * g.outputPixels();
          int filters = outSize / g.outputPixels();
          int patch = g.patchSize();
          CUdeviceptr col = aux.get(i).ptr;
          // dW^T = dy^T col (filters x patch), transposed into place; db = column sums of dy.
          scratch.ensure((long) filters * patch);
          gemm(true, false, filters, patch, rows, dy, filters, col, patch, 0f, scratch.ptr, patch);
          launch("transpose", (long) filters * patch, scratch.ptr, filters, patch, grads.at(l.paramOffset()));
          launchGrid("sum_rows", filters, 1, 256, dy, rows, filters, grads.at(l.paramOffset() + c.weightCount()));
          if (needDx) {
            scratch2.ensure((long) rows * patch);
            gemm(false, true, rows, patch, filters, dy, filters, params.at(l.paramOffset()), filters, 0f, scratch2.ptr, patch);
            launch("col2im", (long) n * inSize, concat(new Object[] {scratch2.ptr, dx, n}, geometry(g)));
          }
        } else if (l instanceof Dense d) {
          gemm(true, false, inSize, outSize, n, x, inSize, dy, outSize, 0f, grads.at(l.paramOffset()), outSize);
          launchGrid("sum_rows", outSize, 1, 256, dy, n, outSize, grads.at(l.paramOffset() + d.weightCount()));
          if (needDx) {
            gemm(false, true, n, inSize, outSize, dy, outSize, params.at(l.paramOffset()), outSize, 0f, dx, inSize);
          }
        } else if (needDx && l instanceof MaxPool2d) {
          cuMemsetD32(dx, 0, (long) n * inSize);
          launch("max_pool_backward", (long) n * outSize, dy, aux.get(i).ptr, dx, n * outSize);
        } else if (needDx && l instanceof Relu) {
          launch("relu_backward", (long) n * outSize, acts.get(i).ptr, dy, dx, n * outSize);
        } else if (needDx && l instanceof Dropout) {
          Buffer mask = aux.get(i);
          if (mask.ptr == null) {
            cuMemcpyDtoDFloats(dy, dx, (long) n * outSize);
          } else {
            launch("multiply", (long) n * outSize, dy, mask.ptr, dx, n * outSize);
          }
        } else if (needDx && l instanceof Flatten) {
          cuMemcpyDtoDFloats(dy, dx, (long) n * outSize);
        }
        dy = dx;
      }
    }

    @Override
    public void applyGradients(Optimizer optimizer) {
      cuCtxSetCurrent(context);
      optimizer.beginStep();
      if (optimizer instanceof Adam a) {
        if (onDevice != optimizer) {
          // First step with this optimizer here: its moments (zero, or restored from a checkpoint) go up.
          upload(a.moments()[0], m);
          upload(a.moments()[1], v);
          onDevice = optimizer;
        }
        launch("adam", paramCount, params.ptr, grads.ptr, m.ptr, v.ptr, paramCount, a.stepSize(), Adam.BETA1, Adam.BETA2,
            Adam.EPSILON);
      } else if (optimizer instanceof Sgd) {
        launch("sgd", paramCount, params.ptr, grads.ptr, paramCount, optimizer.learningRate());
      } else {
        throw new UnsupportedOperationException("the GPU backend has no kernel for optimizer " + optimizer.name());
      }
      cuCtxSynchronize();
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
      cuCtxSetCurrent(context);
      int inSize = net.spec().inputShape().size();
      int classes = net.spec().numClasses();
      int chunk = 1024;
      for (int s = 0; s < n; s += chunk) {
        int k = Math.min(chunk, n - s);
        input.ensure((long) k * inSize);
        cuMemcpyHtoD(input.ptr, Pointer.to(images).withByteOffset((long) s * inSize * 4L), (long) k * inSize * 4L);
        Buffer logits = forward(k, false, 0L, new long[] {0}, null);
        cuMemcpyDtoH(Pointer.to(out).withByteOffset((long) s * classes * 4L), logits.ptr, (long) k * classes * 4L);
      }
    }

    @Override
    public void close() {
      cuCtxSetCurrent(context);
      for (Buffer b : List.of(params, grads, m, v, input, labels, dLogits, loss, correct, scratch, scratch2)) {
        b.free();
      }
      for (List<Buffer> l : List.of(acts, dacts, aux)) {
        l.forEach(Buffer::free);
      }
    }
  }
}
