package dev.convspark.ml;

import dev.convspark.tensor.spec.ModelSpec;
import java.util.List;
import org.apache.spark.ml.param.DoubleParam;
import org.apache.spark.ml.param.IntParam;
import org.apache.spark.ml.param.LongParam;
import org.apache.spark.ml.param.Param;
import org.apache.spark.ml.param.ParamValidators;
import org.apache.spark.ml.param.Params;

/**
 * The params {@link CnnClassifier} and {@link CnnClassificationModel} share, declared once. Each
 * class creates its own instances (a param belongs to one owner) through these factories.
 */
final class CnnParams {

  private CnnParams() {
  }

  static Param<String> featuresCol(Params owner) {
    return new Param<>(owner, "featuresCol", "features column name: an image struct, a Vector, array<float>, array<double>, or binary"
        + " holding the model's input shape as unsigned bytes or little-endian float32");
  }

  static Param<String> labelCol(Params owner) {
    return new Param<>(owner, "labelCol", "label column name: 0-based class indices");
  }

  static Param<String> predictionCol(Params owner) {
    return new Param<>(owner, "predictionCol", "prediction column name");
  }

  static Param<String> probabilityCol(Params owner) {
    return new Param<>(owner, "probabilityCol", "column name for predicted class conditional probabilities");
  }

  static Param<String> rawPredictionCol(Params owner) {
    return new Param<>(owner, "rawPredictionCol", "raw prediction (a.k.a. confidence) column name: the logits");
  }

  static Param<String> model(Params owner) {
    return new Param<>(owner, "model", "the network: a built-in name (deep-mnist, softmax-regression) or a text spec"
        + " such as in28x28x1-conv5x5x32-relu-pool2-dense10", new SpecValidator());
  }

  /** Accepts any of the given words, ignoring case. */
  private static final class OneOf extends scala.runtime.AbstractFunction1<String, Object> implements java.io.Serializable {
    private static final long serialVersionUID = 1L;
    private final List<String> words;

    OneOf(String... words) {
      this.words = List.of(words);
    }

    @Override
    public Object apply(String s) {
      return s != null && words.contains(s.toLowerCase(java.util.Locale.ROOT));
    }
  }

  /** Accepts what {@link ModelSpec#parse} accepts. */
  private static final class SpecValidator extends scala.runtime.AbstractFunction1<String, Object>
      implements java.io.Serializable {
    private static final long serialVersionUID = 1L;

    @Override
    public Object apply(String s) {
      try {
        ModelSpec.parse(s);
        return true;
      } catch (IllegalArgumentException e) {
        return false;
      }
    }
  }

  static Param<String> optimizer(Params owner) {
    return new Param<>(owner, "optimizer", "optimizer: adam or sgd (case-insensitive)", new OneOf("adam", "sgd"));
  }

  static DoubleParam learningRate(Params owner) {
    return new DoubleParam(owner, "learningRate", "learning rate (> 0)", ParamValidators.gt(0));
  }

  static Param<String> learningRateSchedule(Params owner) {
    return new Param<>(owner, "learningRateSchedule", "how the learning rate changes with the step t = 1, 2, ...:"
        + " constant; piecewise (learningRate times learningRateFactors[i] after learningRateBoundaries[i-1]);"
        + " cosine (decaying to 0 at decaySteps); exponential (times decayRate every decaySteps, smoothly);"
        + " each times t / warmupSteps for the first warmupSteps steps (case-insensitive)",
        new OneOf("constant", "piecewise", "cosine", "exponential"));
  }

  static org.apache.spark.ml.param.IntArrayParam learningRateBoundaries(Params owner) {
    return new org.apache.spark.ml.param.IntArrayParam(owner, "learningRateBoundaries", "steps after which a"
        + " piecewise schedule's next factor applies: increasing, >= 1",
        (scala.Function1<int[], Object> & java.io.Serializable) v -> {
          for (int i = 0; i < v.length; i++) {
            if (v[i] < 1 || (i > 0 && v[i] <= v[i - 1])) {
              return false;
            }
          }
          return true;
        });
  }

  static org.apache.spark.ml.param.DoubleArrayParam learningRateFactors(Params owner) {
    return new org.apache.spark.ml.param.DoubleArrayParam(owner, "learningRateFactors", "a piecewise schedule's"
        + " factors of learningRate, one more than learningRateBoundaries: positive and finite",
        (scala.Function1<double[], Object> & java.io.Serializable) v -> java.util.Arrays.stream(v)
            .allMatch(f -> f > 0 && !Double.isInfinite(f)));
  }

  static IntParam decaySteps(Params owner) {
    return new IntParam(owner, "decaySteps", "steps over which a cosine schedule decays to 0, or an exponential"
        + " one multiplies the rate by decayRate (>= 1); 0 means maxIter", ParamValidators.gtEq(0));
  }

  static DoubleParam decayRate(Params owner) {
    return new DoubleParam(owner, "decayRate", "an exponential schedule's factor per decaySteps, in (0, 1]",
        ParamValidators.inRange(0, 1, false, true));
  }

  static IntParam warmupSteps(Params owner) {
    return new IntParam(owner, "warmupSteps", "steps of linear warm-up: the scheduled rate times t / warmupSteps"
        + " while t <= warmupSteps (>= 0; 0: none)", ParamValidators.gtEq(0));
  }

  static Param<String> weightCol(Params owner) {
    return new Param<>(owner, "weightCol", "weight column name: each row's weight in the loss (numeric, finite,"
        + " >= 0; the training weights are scaled to a mean of 1, so only their ratios matter). If this is not set"
        + " or empty, we treat all instance weights as 1.0");
  }

  static Param<String> validationIndicatorCol(Params owner) {
    return new Param<>(owner, "validationIndicatorCol", "name of the column that indicates whether each row is for"
        + " training or for validation (boolean, no nulls): false indicates training; true indicates validation, a"
        + " row held out of training and evaluated every validationInterval steps. Not set: no validation");
  }

  static IntParam validationInterval(Params owner) {
    return new IntParam(owner, "validationInterval", "steps between evaluations of the validation rows (>= 1); the"
        + " last step is always evaluated", ParamValidators.gtEq(1));
  }

  static IntParam earlyStoppingPatience(Params owner) {
    return new IntParam(owner, "earlyStoppingPatience", "evaluations in a row without a validation loss lower than"
        + " the best so far by more than validationTol after which training stops, and the model keeps the weights"
        + " of the best evaluation (>= 0; 0: never stop early, the model keeps the last weights)",
        ParamValidators.gtEq(0));
  }

  static DoubleParam validationTol(Params owner) {
    return new DoubleParam(owner, "validationTol", "how much lower than the best so far a validation loss must be"
        + " to count as an improvement for earlyStoppingPatience (>= 0)", ParamValidators.gtEq(0));
  }

  static IntParam batchSize(Params owner) {
    return new IntParam(owner, "batchSize", "global mini-batch size, summed over all partitions (>= 1)", ParamValidators.gtEq(1));
  }

  static IntParam maxIter(Params owner) {
    return new IntParam(owner, "maxIter", "number of optimizer steps (>= 1)", ParamValidators.gtEq(1));
  }

  static DoubleParam keepProb(Params owner) {
    return new DoubleParam(owner, "keepProb", "dropout keep probability while training, in (0, 1]",
        ParamValidators.inRange(0, 1, false, true));
  }

  static Param<String> weightInit(Params owner) {
    return new Param<>(owner, "weightInit", "how the weights are initialised: tutorial (the tutorial's: truncated"
        + " normal with standard deviation 0.1 and biases 0.1; softmax-regression all zeros) or he (truncated normal"
        + " with standard deviation sqrt(2 / fan-in) and biases 0, He et al. 2015: fewer steps to the same accuracy,"
        + " which short and large-batch trainings need) (case-insensitive)", new OneOf("tutorial", "he"));
  }

  static IntParam shiftRange(Params owner) {
    return new IntParam(owner, "shiftRange", "data augmentation: each training image moved by a random whole number"
        + " of pixels in [-shiftRange, shiftRange] along each axis, the pixels it uncovers 0 (>= 0; 0: none; for"
        + " models with an image input, less than its height and width)", ParamValidators.gtEq(0));
  }

  static LongParam seed(Params owner) {
    return new LongParam(owner, "seed", "random seed: initialisation, batch sampling and dropout");
  }

  static Param<String> syncMode(Params owner) {
    return new Param<>(owner, "syncMode", "how gradients are summed across workers every step: barrier (one"
        + " long-lived task per worker in a barrier stage, summing over sockets between JVMs and through memory"
        + " within one) or driver (broadcast weights,"
        + " treeAggregate gradients; for clusters where barrier stages cannot run)",
        ParamValidators.inArray(List.of("barrier", "driver")));
  }

  static IntParam numWorkers(Params owner) {
    return new IntParam(owner, "numWorkers", "number of training workers (barrier tasks or partitions);"
        + " 0 means Spark's default parallelism", ParamValidators.gtEq(0));
  }

  static IntParam threadsPerWorker(Params owner) {
    return new IntParam(owner, "threadsPerWorker", "CPU threads the engine uses in each task (>= 1); when not set, training and transform use"
        + " spark.task.cpus, the cores Spark gives each task", ParamValidators.gtEq(1));
  }

  static Param<String> checkpointDir(Params owner) {
    return new Param<>(owner, "checkpointDir", "directory (any Hadoop file system path) for training checkpoints;"
        + " a fit whose checkpointDir holds a checkpoint of the same model resumes from it, and a retried"
        + " training stage resumes from the newest one. Not set: no checkpoints");
  }

  static Param<String> initialModel(Params owner) {
    return new Param<>(owner, "initialModel", "path (any Hadoop file system path) of a CnnClassificationModel saved"
        + " with save(path) whose weights training starts from, instead of weightInit's; its network must be this"
        + " model's, or differ only from the last dense layer on (a new head, say for other classes: that layer"
        + " starts from weightInit's weights). The optimizer starts afresh. Not set: training starts from"
        + " weightInit's weights");
  }

  static IntParam checkpointInterval(Params owner) {
    return new IntParam(owner, "checkpointInterval", "set checkpoint interval (>= 1) in steps or disable checkpoint (-1);"
        + " the last step is always checkpointed when checkpointDir is set and this is not -1",
        (scala.Function1<Object, Object> & java.io.Serializable) v -> (Integer) v == -1 || (Integer) v >= 1);
  }

  /** A parser that throws IllegalArgumentException for a value it refuses; serializable, as params are. */
  @FunctionalInterface
  interface Parser extends java.io.Serializable {
    void parse(String v);
  }

  /** A param validator that accepts what {@code parser} parses. */
  static scala.Function1<String, Object> parses(Parser parser) {
    return (scala.Function1<String, Object> & java.io.Serializable) v -> {
      try {
        parser.parse(v);
        return true;
      } catch (IllegalArgumentException e) {
        return false;
      }
    };
  }

  static Param<String> device(Params owner) {
    return new Param<>(owner, "device", "where the engine computes: auto (a GPU when one works, else the CPU; logs"
        + " which), cpu, gpu (the GPU Spark assigned to the task, else the first) or gpu:N",
        parses(dev.convspark.tensor.backend.Device::parse));
  }

  static Param<String> precision(Params owner) {
    return new Param<>(owner, "precision", "how a GPU multiplies: fp32 (float32 throughout; the GPU agrees with the"
        + " CPU within 1e-4) or tf32 (the large matrix products and the convolutions on the tensor cores of GPUs of"
        + " compute capability 8.0 and newer, their inputs rounded to TF32's 10-bit mantissa and their sums kept in"
        + " float32; looser: within 5e-2 of the CPU on the layers' checks). The CPU computes in float32 whatever"
        + " this says",
        parses(dev.convspark.tensor.backend.Precision::parse));
  }

  static org.apache.spark.ml.param.DoubleArrayParam thresholds(Params owner) {
    return new org.apache.spark.ml.param.DoubleArrayParam(owner, "thresholds", "per-class thresholds that adjust"
        + " which class is predicted, as MLlib's probabilistic classifiers take them: one a class, each >= 0 and at"
        + " most one of them 0; the prediction is the class with the largest probability / threshold (a 0 threshold"
        + " counts as infinitely large). Unset: the most probable class",
        (scala.Function1<double[], Object> & java.io.Serializable) v -> java.util.Arrays.stream(v).allMatch(t -> t >= 0)
            && java.util.Arrays.stream(v).filter(t -> t == 0).count() <= 1);
  }

  static IntParam inferenceBatchSize(Params owner) {
    return new IntParam(owner, "inferenceBatchSize", "rows scored per engine call in transform (>= 1); bounds the"
        + " memory scoring takes per task", ParamValidators.gtEq(1));
  }
}
