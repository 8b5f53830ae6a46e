package dev.convspark.tensor.backend;

import dev.convspark.tensor.Network;
import dev.convspark.tensor.kernels.FastKernels;
import dev.convspark.tensor.kernels.Kernels;
import dev.convspark.tensor.kernels.ReferenceKernels;
import dev.convspark.tensor.kernels.ThreadPool;
import dev.convspark.tensor.layers.SoftmaxCrossEntropy;
import dev.convspark.tensor.optim.Optimizer;
import dev.convspark.tensor.spec.ModelSpec;

/**
 * The CPU backend: {@link FastKernels} on a pool of the given number of threads (inside a Spark
 * task, the task's cores), or the {@link ReferenceKernels} for checking.
 */
public final class CpuBackend implements Backend {

  private static final System.Logger LOG = System.getLogger(CpuBackend.class.getName());

  /** Training steps after which the kernels' allocations are counted, once the JIT has compiled them. */
  static final int ALLOCATION_CHECK_FROM = 200;
  /** Steps counted. */
  static final int ALLOCATION_CHECK_STEPS = 10;
  /**
   * Bytes a step above which the kernels are taken to hold their vectors on the heap: healthy
   * deep-mnist steps allocate about 30 KB at batch 50 (the loops' lambdas and small arrays); a
   * multiply kernel compiled with boxed vectors allocates two vectors a depth step.
   */
  static final long BOXED_BYTES_PER_STEP = 8L << 20;

  /** Samples per inference chunk: bounds the im2col buffers whatever batch a caller passes. */
  static final int INFERENCE_CHUNK = 256;

  private final ThreadPool pool;
  private final Kernels kernels;

  private CpuBackend(ThreadPool pool, Kernels kernels) {
    this.pool = pool;
    this.kernels = kernels;
  }

  /** The JDK module the fast kernels are written with; a JVM resolves it only when told to. */
  static final String VECTOR_MODULE = "jdk.incubator.vector";

  /**
   * Fails, saying what to add, where the JVM was started without {@link #VECTOR_MODULE} (a Spark
   * application's own {@code spark-submit} without the option, say), rather than with the
   * {@code NoClassDefFoundError} the kernels would meet.
   */
  static void requireVectorApi(boolean present) {
    if (!present) {
      throw new IllegalStateException("the CPU backend needs the JDK's Vector API (module " + VECTOR_MODULE
          + "), which this JVM was started without: add --add-modules=" + VECTOR_MODULE + " to its options (with"
          + " Spark, to spark.driver.extraJavaOptions and spark.executor.extraJavaOptions; bin/convspark passes it)");
    }
  }

  /** Whether this JVM's log already has {@link FastKernels#avx512OffWarning()}. */
  private static final java.util.concurrent.atomic.AtomicBoolean ISA_CHECKED =
      new java.util.concurrent.atomic.AtomicBoolean();

  /**
   * The fast backend on {@code threads} threads (at least 1). The first in a JVM warns in the log
   * where the CPU has AVX-512 that the JVM left off by default ({@link FastKernels#avx512OffWarning()}).
   */
  public static CpuBackend create(int threads) {
    requireVectorApi(ModuleLayer.boot().findModule(VECTOR_MODULE).isPresent());
    ThreadPool pool = new ThreadPool(threads);
    if (ISA_CHECKED.compareAndSet(false, true)) {
      String warning = FastKernels.avx512OffWarning();
      if (warning != null) {
        LOG.log(System.Logger.Level.WARNING, warning);
      }
    }
    return new CpuBackend(pool, new FastKernels(pool));
  }

  /** The fast backend on every core of this machine. */
  public static CpuBackend create() {
    return create(Runtime.getRuntime().availableProcessors());
  }

  /** The reference kernels, single-threaded: slow, for tests. */
  public static CpuBackend reference() {
    return new CpuBackend(null, new ReferenceKernels());
  }

  /**
   * The reference kernels with large products' rows shared among {@code threads} threads (at
   * least 1): the same results bit for bit, sooner (the GPU check's reference).
   */
  public static CpuBackend reference(int threads) {
    return new CpuBackend(null, new ReferenceKernels(threads > 1 ? new ThreadPool(threads) : null));
  }

  /** The kernels this backend computes with. */
  public Kernels kernels() {
    return kernels;
  }

  @Override
  public String describe() {
    if (!(kernels instanceof FastKernels)) {
      int t = kernels.threads();
      return "cpu (reference kernels" + (t == 1 ? ")" : ", " + t + " threads)");
    }
    int t = kernels.threads();
    return "cpu (" + t + (t == 1 ? " thread, " : " threads, ") + FastKernels.vectorLength() + "-float vectors)";
  }

  /**
   * What the log says when the kernels allocated {@code bytesPerStep} bytes a training step: the JIT
   * has compiled a vector kernel with its vectors on the heap, and this JVM trains several times
   * slower for its whole life (HotSpot does not recompile it).
   */
  static String boxedWarning(long bytesPerStep) {
    return String.format(java.util.Locale.ROOT, "the CPU kernels allocated %.1f MB a training step where about 30 KB"
        + " are usual: the JIT compiled a vector kernel with its vectors on the heap, and this JVM will train several"
        + " times slower for its whole life; restart it (rare since the kernels warm up as they load and keep within"
        + " the JIT's trap limits; seen here under -XX:CompileCommand=print)", bytesPerStep / 1048576.0);
  }

  /** {@code runner}'s bytes allocated a step in its counted steps (a runner of this backend); -1 before them. */
  static long allocatedBytesPerStep(ModelRunner runner) {
    return ((Runner) runner).allocatedBytesPerStep();
  }

  @Override
  public ModelRunner open(ModelSpec spec) {
    return new Runner(new Network(spec));
  }

  @Override
  public void close() {
    if (pool != null) {
      pool.close();
    }
    if (kernels instanceof ReferenceKernels r) {
      r.close();
    }
  }

  private final class Runner implements ModelRunner {
    private final Network net;
    private float[] dLogits = new float[0];
    /** The last step's images (the first layer's input, see {@link #copyFactoredGradientsTo}) and samples. */
    private float[] lastImages;
    private int lastSamples;
    /** Where {@link #predictLogits} copies a chunk of images that it cannot read in place. */
    private float[] inferenceChunk = new float[0];
    /** Told as the backward pass finishes the gradients (see ModelRunner#setGradientListener); or null. */
    private java.util.function.IntConsumer gradientListener;
    /** See {@link ModelRunner#setClock}; or null. */
    private long[] clock;
    /** Training steps so far, and the bytes the kernels allocated in the counted ones. */
    private int steps;
    private long countedBytes;
    /** Bytes a step the kernels allocated in the counted steps; -1 until counted or where not countable. */
    private long bytesPerStep = -1;

    Runner(Network net) {
      this.net = net;
    }

    @Override
    public ModelSpec spec() {
      return net.spec();
    }

    @Override
    public int paramCount() {
      return net.paramCount();
    }

    @Override
    public void initialize(long seed) {
      net.initialize(seed);
    }

    @Override
    public void copyParametersTo(float[] dst) {
      System.arraycopy(net.params(), 0, dst, 0, net.paramCount());
    }

    @Override
    public void copyParametersFrom(float[] src) {
      requireLength(src, "parameters");
      System.arraycopy(src, 0, net.params(), 0, net.paramCount());
    }

    @Override
    public float[] hostParameters() {
      return net.params();
    }

    @Override
    public float[] hostGradients() {
      return net.grads();
    }

    @Override
    public void copyGradientsTo(float[] dst) {
      System.arraycopy(net.grads(), 0, dst, 0, net.paramCount());
    }

    @Override
    public void copyGradientsFrom(float[] src) {
      requireLength(src, "gradients");
      System.arraycopy(src, 0, net.grads(), 0, net.paramCount());
    }

    private void requireLength(float[] a, String what) {
      if (a.length != net.paramCount()) {
        throw new IllegalArgumentException(what + " must hold " + net.paramCount() + " floats for "
            + net.spec().name() + " but hold " + a.length);
      }
    }

    @Override
    public void setKeepProb(float keepProb) {
      net.setKeepProb(keepProb);
    }

    @Override
    public SoftmaxCrossEntropy.Result computeGradients(float[] images, int[] labels, float[] weights, int n,
                                                       float lossScale, long seed, long[] firsts, int[] lengths) {
      // With a gradient listener the caller's thread may also exchange gradients: its workers alone count.
      boolean counting = pool != null && steps >= ALLOCATION_CHECK_FROM
          && steps < ALLOCATION_CHECK_FROM + ALLOCATION_CHECK_STEPS && countedBytes >= 0;
      boolean withCaller = gradientListener == null;
      long before = counting ? pool.allocatedBytes(withCaller) : 0;
      SoftmaxCrossEntropy.Result r = step(images, labels, weights, n, lossScale, seed, firsts, lengths);
      if (counting) {
        long after = pool.allocatedBytes(withCaller);
        countedBytes = before < 0 || after < 0 ? -1 : countedBytes + after - before;
      }
      if (++steps == ALLOCATION_CHECK_FROM + ALLOCATION_CHECK_STEPS && countedBytes >= 0 && pool != null) {
        bytesPerStep = countedBytes / ALLOCATION_CHECK_STEPS;
        if (bytesPerStep > BOXED_BYTES_PER_STEP) {
          LOG.log(System.Logger.Level.WARNING, boxedWarning(bytesPerStep));
        }
      }
      return r;
    }

    /** Bytes a step the kernels allocated over steps 200 to 209 (see {@link CpuBackend#BOXED_BYTES_PER_STEP}); -1 before or where not countable. */
    long allocatedBytesPerStep() {
      return bytesPerStep;
    }

    private SoftmaxCrossEntropy.Result step(float[] images, int[] labels, float[] weights, int n, float lossScale,
                                            long seed, long[] firsts, int[] lengths) {
      // Before the forward pass: a bad weight leaves the gradients as they were.
      SoftmaxCrossEntropy.requireWeights(weights, n);
      lastImages = null;
      net.setRuns(firsts, lengths);
      float[] logits = net.forward(kernels, images, n, true, seed);
      int classes = net.spec().numClasses();
      if (dLogits.length < n * classes) {
        dLogits = new float[n * classes];
      }
      long t0 = clock == null ? 0 : System.nanoTime();
      SoftmaxCrossEntropy.Result r = SoftmaxCrossEntropy.compute(logits, labels, weights, n, classes, lossScale, dLogits);
      if (clock != null) {
        clock[2 * net.layers().size()] += System.nanoTime() - t0;
      }
      net.backward(kernels, images, dLogits, n, gradientListener);
      lastImages = images;
      lastSamples = n;
      return r;
    }

    @Override
    public void setClock(long[] nanos) {
      int layers = net.layers().size();
      if (nanos != null && nanos.length < 2 * layers + 2) {
        throw new IllegalArgumentException("a clock for " + layers + " layers needs " + (2 * layers + 2)
            + " entries, not " + nanos.length);
      }
      clock = nanos;
      net.setClock(nanos);
    }

    @Override
    public java.util.List<String> layerNames() {
      return net.layers().stream().map(dev.convspark.tensor.layers.Layer::name).toList();
    }

    @Override
    public void setGradientListener(java.util.function.IntConsumer listener) {
      gradientListener = listener;
    }

    @Override
    public DenseWeights largestDense() {
      int i = net.largestDense();
      if (i < 0) {
        return null;
      }
      dev.convspark.tensor.layers.Dense d = (dev.convspark.tensor.layers.Dense) net.layers().get(i);
      return new DenseWeights(d.paramOffset(), d.inputs(), d.units());
    }

    @Override
    public DenseWeights factoredDense() {
      return largestDense();
    }

    /**
     * The factors are where the last step left them: the layer's input (the caller's images for
     * a first layer, kept by reference) and its output gradient, in the network's buffers.
     */
    @Override
    public void copyFactoredGradientsTo(float[] dst, int n, int xAt, int dyAt) {
      DenseWeights d = largestDense();
      int layer = net.largestDense();
      if (n != lastSamples || lastImages == null) {
        throw new IllegalStateException(ModelRunner.noFactors(lastImages == null ? -1 : lastSamples, n));
      }
      ModelRunner.requireFactored("copyFactoredGradientsTo", net.paramCount(), d, dst, n, xAt, dyAt);
      float[] g = net.grads();
      int end = d.weightOffset() + d.inputs() * d.units();
      System.arraycopy(g, 0, dst, 0, d.weightOffset());
      System.arraycopy(g, end, dst, d.weightOffset(), g.length - end);
      System.arraycopy(net.layerInput(layer, lastImages), 0, dst, xAt, n * d.inputs());
      System.arraycopy(net.outputGradient(layer, dLogits), 0, dst, dyAt, n * d.units());
    }

    @Override
    public void copyFactoredGradientsFrom(float[] src, int samples, int xAt, int dyAt) {
      DenseWeights d = largestDense();
      ModelRunner.requireFactored("copyFactoredGradientsFrom", net.paramCount(), d, src, samples, xAt, dyAt);
      float[] g = net.grads();
      int end = d.weightOffset() + d.inputs() * d.units();
      System.arraycopy(src, 0, g, 0, d.weightOffset());
      System.arraycopy(src, d.weightOffset(), g, end, g.length - end);
      kernels.gemm(true, false, d.inputs(), d.units(), samples, src, xAt, d.inputs(), src, dyAt, d.units(), 0f, g,
          d.weightOffset(), d.units());
    }

    @Override
    public void applyGradients(Optimizer optimizer) {
      long t0 = clock == null ? 0 : System.nanoTime();
      update(optimizer);
      if (clock != null) {
        clock[2 * net.layers().size() + 1] += System.nanoTime() - t0;
      }
    }

    private void update(Optimizer optimizer) {
      float[] p = net.params();
      float[] g = net.grads();
      optimizer.beginStep();
      // Small models update faster on one thread than the hand-off to others costs.
      int parts = pool == null || p.length < 1 << 16 ? 1 : pool.threads();
      // Ranges in multiples of 64 floats keep every range's vector loop whole.
      int per = ((p.length + parts - 1) / parts + 63) / 64 * 64;
      if (parts == 1) {
        optimizer.update(p, g, 0, p.length);
      } else {
        pool.parallelFor(parts, t -> optimizer.update(p, g, Math.min(p.length, t * per), Math.min(p.length, (t + 1) * per)));
      }
    }

    @Override
    public void predictLogits(float[] images, int n, float[] out) {
      predictLogits(images, 0, n, out);
    }

    /** The network reads a batch from its start: read in place when it is one chunk from image 0, else copied. */
    @Override
    public void predictLogits(float[] images, int from, int n, float[] out) {
      ModelRunner.requirePredictRange(net.spec(), images, from, n, out);
      int in = net.spec().inputShape().size();
      int classes = net.spec().numClasses();
      boolean inPlace = from == 0 && n <= INFERENCE_CHUNK;
      if (!inPlace && inferenceChunk.length < INFERENCE_CHUNK * in) {
        inferenceChunk = new float[INFERENCE_CHUNK * in];
      }
      float[] chunk = inPlace ? images : inferenceChunk;
      // Inference overwrites the activations: the last step's factors are gone.
      lastImages = null;
      for (int s = 0; s < n; s += INFERENCE_CHUNK) {
        int m = Math.min(INFERENCE_CHUNK, n - s);
        if (!inPlace) {
          System.arraycopy(images, (from + s) * in, chunk, 0, m * in);
        }
        float[] logits = net.forward(kernels, chunk, m, false, 0L);
        System.arraycopy(logits, 0, out, s * classes, m * classes);
      }
    }

    @Override
    public void close() {
    }
  }
}
