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

  /** Samples per inference chunk: bounds the im2col buffers whatever batch a caller passes. */
  static final int INFERENCE_CHUNK = 256;

  private final ThreadPool pool;
  private final Kernels kernels;

  private CpuBackend(ThreadPool pool, Kernels kernels) {
    this.pool = pool;
    this.kernels = kernels;
  }

  /** The fast backend on {@code threads} threads (at least 1). */
  public static CpuBackend create(int threads) {
    ThreadPool pool = new ThreadPool(threads);
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

  /** The kernels this backend computes with. */
  public Kernels kernels() {
    return kernels;
  }

  @Override
  public String describe() {
    if (!(kernels instanceof FastKernels)) {
      return "cpu (reference kernels)";
    }
    int t = kernels.threads();
    return "cpu (" + t + (t == 1 ? " thread, " : " threads, ") + FastKernels.vectorLength() + "-float vectors)";
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
  }

  private final class Runner implements ModelRunner {
    private final Network net;
    private float[] dLogits = new float[0];
    /** Where {@link #predictLogits} copies a chunk of images that it cannot read in place. */
    private float[] inferenceChunk = new float[0];
    /** Told as the backward pass finishes the gradients (see ModelRunner#setGradientListener); or null. */
    private java.util.function.IntConsumer gradientListener;
    /** See {@link ModelRunner#setClock}; or null. */
    private long[] clock;

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
    public SoftmaxCrossEntropy.Result computeGradients(float[] images, int[] labels, int n, float lossScale, long seed,
                                                       long[] firsts, int[] lengths) {
      net.setRuns(firsts, lengths);
      float[] logits = net.forward(kernels, images, n, true, seed);
      int classes = net.spec().numClasses();
      if (dLogits.length < n * classes) {
        dLogits = new float[n * classes];
      }
      long t0 = clock == null ? 0 : System.nanoTime();
      SoftmaxCrossEntropy.Result r = SoftmaxCrossEntropy.compute(logits, labels, n, classes, lossScale, dLogits);
      if (clock != null) {
        clock[2 * net.layers().size()] += System.nanoTime() - t0;
      }
      net.backward(kernels, images, dLogits, n, gradientListener);
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
      DenseWeights best = null;
      for (dev.convspark.tensor.layers.Layer l : net.layers()) {
        if (l instanceof dev.convspark.tensor.layers.Dense d
            && (best == null || d.weightCount() > (long) best.inputs() * best.units())) {
          best = new DenseWeights(d.paramOffset(), d.inputs(), d.units());
        }
      }
      return best;
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
      int in = net.spec().inputShape().size();
      int classes = net.spec().numClasses();
      boolean inPlace = from == 0 && n <= INFERENCE_CHUNK;
      if (!inPlace && inferenceChunk.length < INFERENCE_CHUNK * in) {
        inferenceChunk = new float[INFERENCE_CHUNK * in];
      }
      float[] chunk = inPlace ? images : inferenceChunk;
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
