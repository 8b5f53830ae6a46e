package dev.convspark.tensor;

import dev.convspark.tensor.kernels.ConvGeometry;
import dev.convspark.tensor.kernels.Kernels;
import dev.convspark.tensor.layers.Conv2d;
import dev.convspark.tensor.layers.Dense;
import dev.convspark.tensor.layers.Dropout;
import dev.convspark.tensor.layers.Flatten;
import dev.convspark.tensor.layers.Layer;
import dev.convspark.tensor.layers.MaxPool2d;
import dev.convspark.tensor.layers.Relu;
import dev.convspark.tensor.spec.LayerSpec;
import dev.convspark.tensor.spec.ModelSpec;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * A layer stack built from a {@link ModelSpec}, with all parameters in one flat float buffer and
 * all gradients in another of the same layout, and the activation buffers of one batch size.
 * Not thread-safe: one network per thread of control (the kernels parallelise inside).
 */
public final class Network {

  private final ModelSpec spec;
  private final List<Layer> layers;
  private final int paramCount;
  private final float[] params;
  private final float[] grads;
  private float[][] acts;
  private float[][] dacts;
  private int capacity;

  /**
   * Builds the layers of {@code spec}, fused where that gives the same numbers faster (a ReLU after
   * a convolution is applied by the convolution; after that ReLU, a max pool's backward pass is the
   * ReLU's as well); parameters start at zero (see {@link #initialize}).
   */
  public Network(ModelSpec spec) {
    this(spec, true);
  }

  /** As {@link #Network(ModelSpec)}, every layer on its own when {@code fuse} is false (for tests). */
  public Network(ModelSpec spec, boolean fuse) {
    this.spec = spec;
    this.layers = new ArrayList<>();
    Shape s = spec.inputShape();
    List<String> names = spec.layerNames();
    for (LayerSpec l : spec.layers()) {
      Layer layer;
      String name = names.get(layers.size());
      if (l instanceof LayerSpec.Conv c) {
        layer = new Conv2d(name, ConvGeometry.of(s.height(), s.width(), s.channels(),
            c.kernelHeight(), c.kernelWidth(), c.stride(), c.padding()), c.filters());
      } else if (l instanceof LayerSpec.MaxPool p) {
        layer = new MaxPool2d(name, ConvGeometry.of(s.height(), s.width(), s.channels(),
            p.window(), p.window(), p.stride(), p.padding()));
      } else if (l instanceof LayerSpec.Dense d) {
        layer = new Dense(name, s.size(), d.units());
      } else if (l instanceof LayerSpec.Relu) {
        layer = new Relu(name, s);
      } else if (l instanceof LayerSpec.Dropout) {
        layer = new Dropout(name, s);
      } else {
        layer = new Flatten(name, s);
      }
      layers.add(layer);
      s = layer.outputShape();
    }
    for (int i = 1; fuse && i < layers.size(); i++) {
      if (layers.get(i) instanceof Relu relu && layers.get(i - 1) instanceof Conv2d before) {
        before.fuseRelu();
        relu.fuseIntoPrevious();
        if (i + 1 < layers.size() && layers.get(i + 1) instanceof MaxPool2d after) {
          after.maskByPositiveInput();
          relu.leaveBackwardToNext();
        }
      }
    }
    int offset = 0;
    for (Layer l : layers) {
      l.setParamOffset(offset);
      offset = Math.addExact(offset, l.paramCount());
    }
    this.paramCount = offset;
    this.params = new float[paramCount];
    this.grads = new float[paramCount];
  }

  /** The spec this network was built from. */
  public ModelSpec spec() {
    return spec;
  }

  /** The layers, in order. */
  public List<Layer> layers() {
    return layers;
  }

  /** The number of parameters. */
  public int paramCount() {
    return paramCount;
  }

  /** The flat parameter buffer itself (not a copy). */
  public float[] params() {
    return params;
  }

  /** The flat gradient buffer itself (not a copy), same layout as {@link #params()}. */
  public float[] grads() {
    return grads;
  }

  /**
   * Initialises the parameters from {@code seed} as the spec says: weights truncated normal
   * (standard deviation 0.1, redrawn beyond two standard deviations) or zero, biases constant.
   */
  public void initialize(long seed) {
    initialize(seed, spec.weightInit(), spec.biasInit());
  }

  /**
   * Initialises the parameters from {@code seed} with {@code init} for the weights and every bias
   * {@code biasInit}. The draws are taken layer by layer, weights first, in the order of
   * {@link #params()}: the same seed gives the same parameters.
   */
  public void initialize(long seed, ModelSpec.WeightInit init, float biasInit) {
    SplittableRandom rnd = new SplittableRandom(seed);
    for (Layer l : layers) {
      int weights = l instanceof Conv2d c ? c.weightCount() : l instanceof Dense d ? d.weightCount() : 0;
      int o = l.paramOffset();
      // One bias per output: a weight's fan-in is the weights per output (kh * kw * c for a convolution).
      int outputs = l.paramCount() - weights;
      double stddev = init == ModelSpec.WeightInit.HE_NORMAL && outputs > 0 ? Math.sqrt(2.0 * outputs / weights) : 0.1;
      for (int i = 0; i < weights; i++) {
        params[o + i] = init == ModelSpec.WeightInit.ZEROS ? 0f : truncatedNormal(rnd, stddev);
      }
      for (int i = weights; i < l.paramCount(); i++) {
        params[o + i] = biasInit;
      }
    }
  }

  private static float truncatedNormal(SplittableRandom rnd, double stddev) {
    while (true) {
      // Box-Muller; keep draws within two standard deviations, as TensorFlow's truncated_normal.
      double u1 = rnd.nextDouble();
      double u2 = rnd.nextDouble();
      double z = Math.sqrt(-2 * Math.log(1 - u1)) * Math.cos(2 * Math.PI * u2);
      if (Math.abs(z) <= 2) {
        return (float) (z * stddev);
      }
    }
  }

  /** Sets the keep probability of every dropout layer. */
  public void setKeepProb(float keepProb) {
    for (Layer l : layers) {
      if (l instanceof Dropout d) {
        d.setKeepProb(keepProb);
      }
    }
  }

  /** Where the next batch starts within its global batch, for dropout (see {@link Dropout#setFirstSample}). */
  public void setFirstSample(long first) {
    setRuns(new long[] {first}, null);
  }

  /** Where the next batch's samples sit in their global batch, for dropout (see {@link Dropout#setRuns}). */
  public void setRuns(long[] firsts, int[] lengths) {
    for (Layer l : layers) {
      if (l instanceof Dropout d) {
        d.setRuns(firsts, lengths);
      }
    }
  }

  /** The longest array a JVM allocates (a little under 2^31 - 1 elements). */
  private static final long MAX_ARRAY = Integer.MAX_VALUE - 8;

  private void ensureCapacity(int n) {
    if (n <= capacity) {
      return;
    }
    acts = new float[layers.size()][];
    dacts = new float[layers.size()][];
    for (int i = 0; i < layers.size(); i++) {
      Layer l = layers.get(i);
      if (l instanceof Flatten || (l instanceof Relu r && r.fusedIntoPrevious())) {
        // A flatten shares its input's buffers; so does a ReLU its convolution applies.
        acts[i] = i == 0 ? null : acts[i - 1];
        dacts[i] = i == 0 ? null : dacts[i - 1];
      }
      if (acts[i] == null) {
        long size = (long) n * l.outputShape().size();
        if (size > MAX_ARRAY) {
          throw new IllegalArgumentException(String.format(Locale.ROOT, "a batch of %,d samples through %s (%,d values"
              + " a sample) is %,d values, more than a Java array holds (%,d): fewer samples at a time (a smaller"
              + " batchSize, or more partitions to share it)", n, l.name(), l.outputShape().size(), size, MAX_ARRAY));
        }
        acts[i] = new float[(int) size];
        dacts[i] = new float[(int) size];
      }
    }
    capacity = n;
  }

  /**
   * Runs the forward pass on {@code n} samples of {@code x} (each {@code spec().inputShape()}) and
   * returns the buffer holding the logits, {@code n x numClasses} at its start. The buffer is
   * reused by the next call.
   */
  public float[] forward(Kernels k, float[] x, int n, boolean training, long seed) {
    ensureCapacity(n);
    float[] in = x;
    long[] c = clock;
    for (int i = 0; i < layers.size(); i++) {
      long t0 = c == null ? 0 : System.nanoTime();
      // Each layer gets its own stream of randomness for the step.
      layers.get(i).forward(k, params, in, acts[i], n, training, seed * 0x9E3779B97F4A7C15L + i);
      in = acts[i];
      if (c != null) {
        c[i] += System.nanoTime() - t0;
      }
    }
    return in;
  }

  /** Per-layer time accumulators while set (see {@link #setClock}); null: not timed. */
  private long[] clock;

  /**
   * Adds each layer's forward time to {@code nanos[i]} and its backward time to
   * {@code nanos[layers().size() + i]} from now on (null: stop timing). For profiles: a clock read
   * costs tens of nanoseconds per layer.
   */
  public void setClock(long[] nanos) {
    if (nanos != null && nanos.length < 2 * layers.size()) {
      throw new IllegalArgumentException("a clock for " + layers.size() + " layers needs " + 2 * layers.size()
          + " entries, not " + nanos.length);
    }
    clock = nanos;
  }

  /**
   * The index of the dense layer with the most weights (the first of equals), or -1 when the
   * network has none.
   */
  public int largestDense() {
    int best = -1;
    for (int i = 0; i < layers.size(); i++) {
      if (layers.get(i) instanceof Dense d && (best == -1 || d.weightCount() > ((Dense) layers.get(best)).weightCount())) {
        best = i;
      }
    }
    return best;
  }

  /**
   * Layer {@code i}'s input in the last {@link #forward}: {@code x}, the network's input, for the
   * first layer, else the buffer the layer before wrote (valid until the next pass).
   */
  public float[] layerInput(int i, float[] x) {
    return i == 0 ? x : acts[i - 1];
  }

  /**
   * The gradient of the loss with respect to layer {@code i}'s output in the last
   * {@link #backward}: {@code dLogits} for the last layer, else the buffer the layer after wrote
   * (valid until the next pass).
   */
  public float[] outputGradient(int i, float[] dLogits) {
    return i == layers.size() - 1 ? dLogits : dacts[i];
  }

  /**
   * Runs the backward pass after {@link #forward} on the same input, given the gradient of the
   * loss with respect to the logits; writes every parameter gradient into {@link #grads()}.
   */
  public void backward(Kernels k, float[] x, float[] dLogits, int n) {
    backward(k, x, dLogits, n, null);
  }

  /**
   * As {@link #backward(Kernels, float[], float[], int)}, telling {@code finished} (when not null)
   * after each layer the index of {@link #grads()} from which every gradient is final, and within
   * a layer that finishes its gradients in parts (a dense layer's rows) after each part.
   */
  public void backward(Kernels k, float[] x, float[] dLogits, int n, java.util.function.IntConsumer finished) {
    float[] dy = dLogits;
    long[] c = clock;
    for (int i = layers.size() - 1; i >= 0; i--) {
      long t0 = c == null ? 0 : System.nanoTime();
      float[] in = i == 0 ? x : acts[i - 1];
      // The first layer needs no input gradient.
      float[] dx = i == 0 ? null : dacts[i - 1];
      layers.get(i).backward(k, params, grads, in, acts[i], dy, dx, n, finished);
      dy = dx;
      if (c != null) {
        c[layers.size() + i] += System.nanoTime() - t0;
      }
      if (finished != null) {
        finished.accept(i == 0 ? 0 : layers.get(i).paramOffset());
      }
    }
  }
}
