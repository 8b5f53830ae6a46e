package dev.convspark.tensor.backend;

import dev.convspark.tensor.layers.SoftmaxCrossEntropy;
import dev.convspark.tensor.optim.Optimizer;
import dev.convspark.tensor.spec.ModelSpec;

/**
 * One replica of a network on a backend. Parameters and gradients stay in the backend's memory
 * between steps; the host sees them only through the copy methods, each one flat array in the
 * layout of {@link dev.convspark.tensor.Network}, so an allreduce, a checkpoint or a broadcast is
 * one contiguous array.
 *
 * <p>A data-parallel step is: {@link #computeGradients}, {@link #copyGradientsTo} the host, sum
 * them across replicas, {@link #copyGradientsFrom} the sum, {@link #applyGradients}.
 */
public interface ModelRunner extends AutoCloseable {

  /** The spec of the network. */
  ModelSpec spec();

  /** Number of parameters (length of every flat array). */
  int paramCount();

  /** Initialises the parameters from a seed, as {@link dev.convspark.tensor.Network#initialize}. */
  void initialize(long seed);

  /** Copies the parameters out into {@code dst}. */
  void copyParametersTo(float[] dst);

  /** Replaces the parameters with {@code src}. */
  void copyParametersFrom(float[] src);

  /** Copies the gradients of the last {@link #computeGradients} into {@code dst}. */
  void copyGradientsTo(float[] dst);

  /** Replaces the gradients with {@code src}, e.g. with the sum over all replicas. */
  void copyGradientsFrom(float[] src);

  /**
   * The live parameter array when this backend keeps the parameters in this JVM's heap (the CPU),
   * else null. Writing it changes the model; it is valid until {@link #close}.
   */
  default float[] hostParameters() {
    return null;
  }

  /**
   * The live gradient array of the last {@link #computeGradients} when this backend keeps it in
   * this JVM's heap (the CPU), else null.
   */
  default float[] hostGradients() {
    return null;
  }

  /**
   * Tells {@code listener}, during each later {@link #computeGradients}, the index from which the
   * gradient array of {@link #hostGradients} is final: the backward pass finishes the layers from
   * the last to the first, so the index falls as it goes (and reaches 0 at the end). So an
   * allreduce can send the top layers' gradients while the lower ones are being computed. Null
   * stops it. Backends whose gradients are not in this JVM's heap ignore it.
   */
  default void setGradientListener(java.util.function.IntConsumer listener) {
  }

  /**
   * Where a dense layer's weights lie in the parameter array: {@code inputs x units} floats,
   * row-major, from {@code weightOffset}.
   */
  record DenseWeights(int weightOffset, int inputs, int units) {
    /**
     * Whether {@code samples} samples' rows of this layer ({@code inputs + units} floats each: the
     * factors of its weight gradient) are fewer floats than its weights: where an exchange sends
     * the factors instead of the weight gradient (deep-mnist's first dense layer: under 772 samples).
     */
    public boolean fewerAsFactors(long samples) {
      return samples * (inputs + units) < (long) inputs * units;
    }
  }

  /**
   * The dense layer with the most weights, when this backend's listener (see
   * {@link #setGradientListener}) may be a {@link dev.convspark.tensor.layers.FactoredGradients}
   * that takes its weight gradient as factors; null when the model has no dense layer or the
   * gradients are not in this JVM's heap.
   */
  default DenseWeights largestDense() {
    return null;
  }

  /**
   * The dense layer with the most weights, when this runner can hand over the gradient of its last
   * {@link #computeGradients} with that layer's weight gradient as its two factors
   * ({@link #copyFactoredGradientsTo}) and take a sum over replicas back in that form
   * ({@link #copyFactoredGradientsFrom}); null when it cannot or the model has no dense layer. An
   * exchange between runners whose gradients are not in this JVM's heap (GPUs) then moves, at
   * small batches, the samples' input and output-gradient rows of that layer instead of its
   * weight gradient (deep-mnist's first dense layer at a batch of 50: 0.2 M floats against 3.2 M),
   * to and from the device as well as between the replicas.
   */
  default DenseWeights factoredDense() {
    return null;
  }

  /**
   * The floats of {@link #factoredDense()}'s layout for {@code samples} samples: the gradient but
   * the layer's weights, then every sample's input row, then every sample's output-gradient row.
   */
  static long factoredLength(int paramCount, DenseWeights d, long samples) {
    return paramCount - (long) d.inputs() * d.units() + samples * (d.inputs() + d.units());
  }

  /**
   * Copies the gradient of the last {@link #computeGradients} out in factored form, before anything
   * else runs the network (inference overwrites the factors; see
   * {@link #factoredDense()}, which must not be null): the gradient but that layer's weights into
   * {@code dst} from its start (the floats before the weights, then those after them), that
   * layer's input, {@code n x inputs} for the step's {@code n} samples, into {@code dst} from
   * {@code xAt}, and its output gradient, {@code n x units}, from {@code dyAt}.
   *
   * @param n the last step's samples, which this runner checks
   */
  default void copyFactoredGradientsTo(float[] dst, int n, int xAt, int dyAt) {
    throw new UnsupportedOperationException(getClass().getSimpleName() + " keeps no factored gradients");
  }

  /**
   * Replaces the gradients with a sum in the form {@link #copyFactoredGradientsTo} writes, of
   * {@code samples} samples: {@code src}'s start is every parameter's gradient but the factored
   * layer's weights, whose gradient becomes {@code x^T dy}, {@code x} the {@code samples x inputs}
   * floats from {@code xAt} and {@code dy} the {@code samples x units} from {@code dyAt}, computed
   * here (on the device, for a GPU).
   */
  default void copyFactoredGradientsFrom(float[] src, int samples, int xAt, int dyAt) {
    throw new UnsupportedOperationException(getClass().getSimpleName() + " keeps no factored gradients");
  }

  /** Why the factors of {@code n} samples cannot be copied out: {@code last} samples in the last step, -1 for none since the network last ran otherwise. */
  static String noFactors(int last, int n) {
    return "copyFactoredGradientsTo: " + (last < 0 ? "no training step since the network last ran (inference"
        + " overwrites the factors)" : "the last step had " + last + " samples") + ", not " + n;
  }

  /**
   * Refuses factored arrays that do not hold what {@code samples} samples need from {@code xAt}
   * and {@code dyAt}, saying so.
   */
  static void requireFactored(String what, int paramCount, DenseWeights d, float[] a, long samples, int xAt,
                              int dyAt) {
    long rest = paramCount - (long) d.inputs() * d.units();
    if (samples < 0 || xAt < rest || dyAt < rest || xAt + samples * d.inputs() > a.length
        || dyAt + samples * d.units() > a.length) {
      throw new IllegalArgumentException(what + ": " + samples + " samples' factors of the dense layer of "
          + d.inputs() + " x " + d.units() + " weights, from " + xAt + " (inputs) and " + dyAt
          + " (output gradients) after the other " + rest + " gradients, do not fit an array of " + a.length
          + " floats");
    }
  }

  /** The probability with which dropout layers keep a value while training. */
  void setKeepProb(float keepProb);

  /**
   * Forward and backward pass over {@code n} samples: afterwards the gradients hold
   * {@code lossScale * d(sum of per-sample losses)/d(params)}.
   *
   * @param images     {@code n} samples of {@code spec().inputShape()}, one after another
   * @param labels     class indices in {@code [0, numClasses)}
   * @param lossScale  1 for the summed loss, {@code 1 / globalBatch} for the mean over a global batch
   * @param seed       this step's seed for dropout
   * @return the summed loss (unscaled) and the number of correct argmax predictions
   */
  default SoftmaxCrossEntropy.Result computeGradients(float[] images, int[] labels, int n, float lossScale, long seed) {
    return computeGradients(images, labels, n, lossScale, seed, 0);
  }

  /**
   * As above for a part of a global batch that starts at sample {@code firstSample} of it: dropout
   * masks each sample as it would sample {@code firstSample + i} of the whole batch (see
   * {@link dev.convspark.tensor.layers.Dropout#setFirstSample}), so workers that split a global
   * batch drop the same values as one replica running all of it.
   */
  default SoftmaxCrossEntropy.Result computeGradients(float[] images, int[] labels, int n, float lossScale, long seed,
                                                      long firstSample) {
    return computeGradients(images, labels, n, lossScale, seed, new long[] {firstSample}, null);
  }

  /**
   * As above for a batch made of runs of a global batch (the parts of several workers): the first
   * {@code lengths[0]} samples are samples {@code firsts[0]} onwards of the global batch, and so on
   * (see {@link dev.convspark.tensor.layers.Dropout#setRuns}); {@code lengths} null: one run.
   */
  default SoftmaxCrossEntropy.Result computeGradients(float[] images, int[] labels, int n, float lossScale, long seed,
                                                      long[] firsts, int[] lengths) {
    return computeGradients(images, labels, null, n, lossScale, seed, firsts, lengths);
  }

  /**
   * As above with a weight per sample ({@code weights}, null: every weight 1; finite and not
   * negative): the gradients hold {@code lossScale * d(sum of weights[s] * loss[s])/d(params)},
   * and the result's loss is that weighted sum (see
   * {@link SoftmaxCrossEntropy#compute(float[], int[], float[], int, int, float, float[])}).
   */
  SoftmaxCrossEntropy.Result computeGradients(float[] images, int[] labels, float[] weights, int n, float lossScale,
                                              long seed, long[] firsts, int[] lengths);

  /**
   * Multiplies the gradients of the last {@link #computeGradients} by {@code factor}, where they
   * are (a sum over samples into their mean): in place on the CPU, on the device on a GPU,
   * rather than copied out and back.
   */
  default void scaleGradients(float factor) {
    float[] g = hostGradients();
    boolean copy = g == null;
    if (copy) {
      g = new float[paramCount()];
      copyGradientsTo(g);
    }
    for (int i = 0; i < g.length; i++) {
      g[i] *= factor;
    }
    if (copy) {
      copyGradientsFrom(g);
    }
  }

  /**
   * Applies the optimizer to the parameters with the current gradients. On a GPU this queues the
   * update and returns; every later call that reads or replaces parameters, gradients or the
   * optimizer's state sees it done.
   */
  void applyGradients(Optimizer optimizer);

  /**
   * Makes {@code optimizer}'s state current where a backend keeps it elsewhere (a GPU keeps the
   * moments on the device): call before {@link Optimizer#state()}. The CPU does nothing here.
   */
  default void syncOptimizer(Optimizer optimizer) {
  }

  /**
   * For profiles, on the CPU: from now on adds the time of each layer's forward pass to
   * {@code nanos[i]}, of its backward pass to {@code nanos[L + i]} (L layers, in
   * {@link #layerNames()}' order), of the loss to {@code nanos[2L]} and of the optimizer's update to
   * {@code nanos[2L + 1]}; null stops. Other backends time nothing (their work is asynchronous).
   */
  default void setClock(long[] nanos) {
  }

  /** The layers' names in order ({@code conv1}, {@code pool1}, ...), as the engine built them. */
  default java.util.List<String> layerNames() {
    return java.util.List.of();
  }

  /** Inference (dropout off): writes {@code n x numClasses} logits into {@code logits}. */
  void predictLogits(float[] images, int n, float[] logits);

  /**
   * Inference on images {@code [from, from + n)} of {@code images} (each {@code spec().inputShape().size()}
   * floats): writes their {@code n x numClasses} logits into {@code logits} from its start. Backends
   * that upload a batch read it from {@code images} in place (no copy of the batch first); here, a
   * copy.
   */
  default void predictLogits(float[] images, int from, int n, float[] logits) {
    requirePredictRange(spec(), images, from, n, logits);
    int size = spec().inputShape().size();
    predictLogits(from == 0 ? images : java.util.Arrays.copyOfRange(images, from * size, (from + n) * size), n, logits);
  }

  /**
   * Refuses a range {@code [from, from + n)} of images that {@code images} does not hold, or more
   * logits than {@code logits} has room for, saying what was asked and what the arrays hold.
   */
  static void requirePredictRange(ModelSpec spec, float[] images, int from, int n, float[] logits) {
    long size = spec.inputShape().size();
    long classes = spec.numClasses();
    if (from < 0 || n < 0 || (from + (long) n) * size > images.length) {
      throw new IllegalArgumentException("predictLogits: images " + from + " to " + (from + (long) n) + " of "
          + spec.name() + " (" + size + " floats each) need " + (from + (long) n) * size + " floats, but images holds "
          + images.length);
    }
    if (n * classes > logits.length) {
      throw new IllegalArgumentException("predictLogits: " + n + " images' logits need " + n * classes
          + " floats, but logits holds " + logits.length);
    }
  }

  /** Releases the replica's memory. */
  @Override
  void close();
}
