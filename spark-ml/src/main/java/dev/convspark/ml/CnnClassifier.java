package dev.convspark.ml;

import dev.convspark.ml.training.BarrierTraining;
import dev.convspark.ml.training.Checkpoints;
import dev.convspark.ml.training.FeatureReader;
import dev.convspark.ml.training.IndicatorReader;
import dev.convspark.ml.training.LabelReader;
import dev.convspark.ml.training.ProgressReports;
import dev.convspark.ml.training.Settings;
import dev.convspark.ml.training.Shift;
import dev.convspark.ml.training.TrainResult;
import dev.convspark.ml.training.Training;
import dev.convspark.ml.training.Validation;
import dev.convspark.ml.training.WeightReader;
import dev.convspark.tensor.optim.LearningRateSchedule;
import dev.convspark.tensor.spec.ModelSpec;
import java.util.List;
import org.apache.spark.ml.Estimator;
import org.apache.spark.ml.param.DoubleParam;
import org.apache.spark.ml.param.IntParam;
import org.apache.spark.ml.param.LongParam;
import org.apache.spark.ml.param.Param;
import org.apache.spark.ml.param.ParamMap;
import org.apache.spark.ml.util.DefaultParamsReader;
import org.apache.spark.ml.util.DefaultParamsWritable;
import org.apache.spark.ml.util.Identifiable;
import org.apache.spark.ml.util.MLReader;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.types.StructType;

/**
 * Trains a convolutional network (the engine's {@link ModelSpec}) as a Spark ML
 * {@link Estimator}. Defaults are TensorFlow's "Deep MNIST for Experts" recipe: model
 * {@code deep-mnist}, Adam, learning rate 1e-4, global batch 50, keep probability 0.5.
 *
 * <p>Training is synchronous data parallelism: every step, each partition computes the gradient
 * of the summed loss over its share of the global batch (shares proportional to partition sizes),
 * the gradients are summed exactly across partitions, and one optimizer update is applied to the
 * mean, so the result equals single-process training on the same global batches. With
 * {@code syncMode=driver} the weights are broadcast and the gradients tree-aggregated every step.
 */
public final class CnnClassifier extends Estimator<CnnClassificationModel> implements DefaultParamsWritable {
  private static final long serialVersionUID = 1L;

  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(CnnClassifier.class);

  private final String uid;
  private final Param<String> featuresCol;
  private final Param<String> labelCol;
  private final Param<String> predictionCol;
  private final Param<String> probabilityCol;
  private final Param<String> rawPredictionCol;
  private final Param<String> model;
  private final Param<String> optimizer;
  private final DoubleParam learningRate;
  private final IntParam batchSize;
  private final IntParam maxIter;
  private final DoubleParam keepProb;
  private final Param<String> weightInit;
  private final IntParam shiftRange;
  private final LongParam seed;
  private final Param<String> syncMode;
  private final IntParam threadsPerWorker;
  private final IntParam numWorkers;
  private final Param<String> checkpointDir;
  private final Param<String> initialModel;
  private final IntParam checkpointInterval;
  private final Param<String> device;
  private final Param<String> precision;
  private final Param<String> learningRateSchedule;
  private final org.apache.spark.ml.param.IntArrayParam learningRateBoundaries;
  private final org.apache.spark.ml.param.DoubleArrayParam learningRateFactors;
  private final IntParam decaySteps;
  private final DoubleParam decayRate;
  private final IntParam warmupSteps;
  private final Param<String> validationIndicatorCol;
  private final Param<String> weightCol;
  private final IntParam validationInterval;
  private final IntParam earlyStoppingPatience;
  private final DoubleParam validationTol;
  private final org.apache.spark.ml.param.DoubleArrayParam thresholds;

  /** A classifier with a random uid. */
  public CnnClassifier() {
    this(Identifiable.randomUID("cnnClassifier"));
  }

  /** A classifier with the given uid. */
  public CnnClassifier(String uid) {
    this.uid = uid;
    // Params take their owner's uid when created, so they are created after it is set.
    this.featuresCol = CnnParams.featuresCol(this);
    this.labelCol = CnnParams.labelCol(this);
    this.predictionCol = CnnParams.predictionCol(this);
    this.probabilityCol = CnnParams.probabilityCol(this);
    this.rawPredictionCol = CnnParams.rawPredictionCol(this);
    this.model = CnnParams.model(this);
    this.optimizer = CnnParams.optimizer(this);
    this.learningRate = CnnParams.learningRate(this);
    this.batchSize = CnnParams.batchSize(this);
    this.maxIter = CnnParams.maxIter(this);
    this.keepProb = CnnParams.keepProb(this);
    this.weightInit = CnnParams.weightInit(this);
    this.shiftRange = CnnParams.shiftRange(this);
    this.seed = CnnParams.seed(this);
    this.syncMode = CnnParams.syncMode(this);
    this.threadsPerWorker = CnnParams.threadsPerWorker(this);
    this.numWorkers = CnnParams.numWorkers(this);
    this.checkpointDir = CnnParams.checkpointDir(this);
    this.initialModel = CnnParams.initialModel(this);
    this.checkpointInterval = CnnParams.checkpointInterval(this);
    this.device = CnnParams.device(this);
    this.precision = CnnParams.precision(this);
    this.learningRateSchedule = CnnParams.learningRateSchedule(this);
    this.learningRateBoundaries = CnnParams.learningRateBoundaries(this);
    this.learningRateFactors = CnnParams.learningRateFactors(this);
    this.decaySteps = CnnParams.decaySteps(this);
    this.decayRate = CnnParams.decayRate(this);
    this.warmupSteps = CnnParams.warmupSteps(this);
    this.validationIndicatorCol = CnnParams.validationIndicatorCol(this);
    this.weightCol = CnnParams.weightCol(this);
    this.validationInterval = CnnParams.validationInterval(this);
    this.earlyStoppingPatience = CnnParams.earlyStoppingPatience(this);
    this.validationTol = CnnParams.validationTol(this);
    this.thresholds = CnnParams.thresholds(this);
    setDefault(featuresCol, "features");
    setDefault(labelCol, "label");
    setDefault(predictionCol, "prediction");
    setDefault(probabilityCol, "probability");
    setDefault(rawPredictionCol, "rawPrediction");
    setDefault(model, ModelSpec.DEEP_MNIST);
    setDefault(optimizer, "adam");
    setDefault(learningRate, 1e-4);
    setDefault(batchSize, 50);
    setDefault(maxIter, 20_000);
    setDefault(keepProb, 0.5);
    setDefault(weightInit, "tutorial");
    setDefault(shiftRange, 0);
    setDefault(seed, (long) CnnClassifier.class.getName().hashCode());
    setDefault(syncMode, "barrier");
    setDefault(numWorkers, 0);
    setDefault(threadsPerWorker, 1);
    setDefault(checkpointInterval, 1000);
    setDefault(device, "cpu");
    setDefault(precision, "fp32");
    setDefault(learningRateSchedule, "constant");
    setDefault(learningRateBoundaries, new int[0]);
    setDefault(learningRateFactors, new double[0]);
    setDefault(decaySteps, 0);
    setDefault(decayRate, 0.1);
    setDefault(warmupSteps, 0);
    setDefault(validationInterval, 500);
    setDefault(earlyStoppingPatience, 0);
    setDefault(validationTol, 0.0);
  }

  @Override
  public String uid() {
    return uid;
  }

  /** The {@code featuresCol} param; see {@link #explainParams()} for its doc and default. */
  public Param<String> featuresCol() {
    return featuresCol;
  }

  /** The {@code labelCol} param; see {@link #explainParams()} for its doc and default. */
  public Param<String> labelCol() {
    return labelCol;
  }

  /** The {@code predictionCol} param; see {@link #explainParams()} for its doc and default. */
  public Param<String> predictionCol() {
    return predictionCol;
  }

  /** The {@code probabilityCol} param; see {@link #explainParams()} for its doc and default. */
  public Param<String> probabilityCol() {
    return probabilityCol;
  }

  /** The {@code rawPredictionCol} param; see {@link #explainParams()} for its doc and default. */
  public Param<String> rawPredictionCol() {
    return rawPredictionCol;
  }

  /** The {@code model} param; see {@link #explainParams()} for its doc and default. */
  public Param<String> model() {
    return model;
  }

  /** The {@code optimizer} param; see {@link #explainParams()} for its doc and default. */
  public Param<String> optimizer() {
    return optimizer;
  }

  /** The {@code learningRate} param; see {@link #explainParams()} for its doc and default. */
  public DoubleParam learningRate() {
    return learningRate;
  }

  /** The {@code batchSize} param; see {@link #explainParams()} for its doc and default. */
  public IntParam batchSize() {
    return batchSize;
  }

  /** The {@code maxIter} param; see {@link #explainParams()} for its doc and default. */
  public IntParam maxIter() {
    return maxIter;
  }

  /** The {@code keepProb} param; see {@link #explainParams()} for its doc and default. */
  public DoubleParam keepProb() {
    return keepProb;
  }

  /** The {@code seed} param; see {@link #explainParams()} for its doc and default. */
  public LongParam seed() {
    return seed;
  }

  /** The {@code syncMode} param; see {@link #explainParams()} for its doc and default. */
  public Param<String> syncMode() {
    return syncMode;
  }

  /** The {@code threadsPerWorker} param; see {@link #explainParams()} for its doc and default. */
  public IntParam threadsPerWorker() {
    return threadsPerWorker;
  }

  /** The {@code numWorkers} param; see {@link #explainParams()} for its doc and default. */
  public IntParam numWorkers() {
    return numWorkers;
  }

  /** The {@code checkpointDir} param; see {@link #explainParams()} for its doc (no default: no checkpoints). */
  public Param<String> checkpointDir() {
    return checkpointDir;
  }

  /** The {@code checkpointInterval} param; see {@link #explainParams()} for its doc and default. */
  public IntParam checkpointInterval() {
    return checkpointInterval;
  }

  /** The {@code device} param; see {@link #explainParams()} for its doc and default. */
  public Param<String> device() {
    return device;
  }

  /** Sets {@code device}; a value the param rejects fails here, naming it. */
  public CnnClassifier setDevice(String v) {
    return (CnnClassifier) set(device, v);
  }

  /** The {@code precision} param; see {@link #explainParams()} for its doc and default. */
  public Param<String> precision() {
    return precision;
  }

  /** Sets {@code precision} ({@code fp32} or {@code tf32}); a value the param rejects fails here, naming it. */
  public CnnClassifier setPrecision(String v) {
    return (CnnClassifier) set(precision, v);
  }

  /** The {@code thresholds} param (unset by default), passed on to the fitted model. */
  public org.apache.spark.ml.param.DoubleArrayParam thresholds() {
    return thresholds;
  }

  /**
   * Sets {@code thresholds} (one a class, each >= 0, at most one 0) for the fitted model's
   * predictions; a value the param rejects fails here, and a length other than the model's classes
   * fails before training, naming it.
   */
  public CnnClassifier setThresholds(double[] v) {
    return (CnnClassifier) set(thresholds, v);
  }

  /**
   * The {@code initialModel} param (no default): the path of a saved model whose weights training
   * starts from, to train a model further or fine-tune it on other data.
   */
  public Param<String> initialModel() {
    return initialModel;
  }

  /**
   * Sets {@code initialModel}: the path of a {@link CnnClassificationModel} saved with
   * {@code save(path)} (a {@code PipelineModel}'s stage directory too). A path that holds no such
   * model, or one of another network, fails before training, naming the param.
   */
  public CnnClassifier setInitialModel(String path) {
    return (CnnClassifier) set(initialModel, path);
  }

  /** Sets {@code checkpointDir}; see {@link #checkpointDir()}. */
  public CnnClassifier setCheckpointDir(String v) {
    return (CnnClassifier) set(checkpointDir, v);
  }

  /** Sets {@code checkpointInterval}; a value the param rejects fails here, naming it. */
  public CnnClassifier setCheckpointInterval(int v) {
    return (CnnClassifier) set(checkpointInterval, v);
  }

  /** Sets {@code numWorkers}; a value the param rejects fails here, naming it. */
  public CnnClassifier setNumWorkers(int v) {
    return (CnnClassifier) set(numWorkers, v);
  }

  /** Sets {@code featuresCol}; a value the param rejects fails here, naming it. */
  public CnnClassifier setFeaturesCol(String v) {
    return (CnnClassifier) set(featuresCol, v);
  }

  /** Sets {@code labelCol}; a value the param rejects fails here, naming it. */
  public CnnClassifier setLabelCol(String v) {
    return (CnnClassifier) set(labelCol, v);
  }

  /** Sets {@code predictionCol}; a value the param rejects fails here, naming it. */
  public CnnClassifier setPredictionCol(String v) {
    return (CnnClassifier) set(predictionCol, v);
  }

  /** Sets {@code probabilityCol}; a value the param rejects fails here, naming it. */
  public CnnClassifier setProbabilityCol(String v) {
    return (CnnClassifier) set(probabilityCol, v);
  }

  /** Sets {@code rawPredictionCol}; a value the param rejects fails here, naming it. */
  public CnnClassifier setRawPredictionCol(String v) {
    return (CnnClassifier) set(rawPredictionCol, v);
  }

  /** Sets {@code model}; a value the param rejects fails here, naming it. */
  public CnnClassifier setModel(String v) {
    return (CnnClassifier) set(model, v);
  }

  /** Sets {@code optimizer}; a value the param rejects fails here, naming it. */
  public CnnClassifier setOptimizer(String v) {
    return (CnnClassifier) set(optimizer, v);
  }

  /** Sets {@code learningRate}; a value the param rejects fails here, naming it. */
  public CnnClassifier setLearningRate(double v) {
    return (CnnClassifier) set(learningRate, v);
  }

  /** The {@code learningRateSchedule} param; see {@link #explainParams()} for its doc and default. */
  public Param<String> learningRateSchedule() {
    return learningRateSchedule;
  }

  /** The {@code learningRateBoundaries} param; see {@link #explainParams()} for its doc and default. */
  public org.apache.spark.ml.param.IntArrayParam learningRateBoundaries() {
    return learningRateBoundaries;
  }

  /** The {@code learningRateFactors} param; see {@link #explainParams()} for its doc and default. */
  public org.apache.spark.ml.param.DoubleArrayParam learningRateFactors() {
    return learningRateFactors;
  }

  /** The {@code decaySteps} param; see {@link #explainParams()} for its doc and default. */
  public IntParam decaySteps() {
    return decaySteps;
  }

  /** The {@code decayRate} param; see {@link #explainParams()} for its doc and default. */
  public DoubleParam decayRate() {
    return decayRate;
  }

  /** The {@code warmupSteps} param; see {@link #explainParams()} for its doc and default. */
  public IntParam warmupSteps() {
    return warmupSteps;
  }

  /** The {@code validationIndicatorCol} param; see {@link #explainParams()} for its doc (no default: no validation). */
  public Param<String> validationIndicatorCol() {
    return validationIndicatorCol;
  }

  /** The {@code weightCol} param; see {@link #explainParams()} for its doc (no default: every weight 1). */
  public Param<String> weightCol() {
    return weightCol;
  }

  /** Sets {@code weightCol}; see {@link #weightCol()}. */
  public CnnClassifier setWeightCol(String v) {
    return (CnnClassifier) set(weightCol, v);
  }

  /** The {@code validationInterval} param; see {@link #explainParams()} for its doc and default. */
  public IntParam validationInterval() {
    return validationInterval;
  }

  /** The {@code earlyStoppingPatience} param; see {@link #explainParams()} for its doc and default. */
  public IntParam earlyStoppingPatience() {
    return earlyStoppingPatience;
  }

  /** The {@code validationTol} param; see {@link #explainParams()} for its doc and default. */
  public DoubleParam validationTol() {
    return validationTol;
  }

  /** Sets {@code validationIndicatorCol}; see {@link #validationIndicatorCol()}. */
  public CnnClassifier setValidationIndicatorCol(String v) {
    return (CnnClassifier) set(validationIndicatorCol, v);
  }

  /** Sets {@code validationInterval}; a value the param rejects fails here, naming it. */
  public CnnClassifier setValidationInterval(int v) {
    return (CnnClassifier) set(validationInterval, v);
  }

  /** Sets {@code earlyStoppingPatience}; a value the param rejects fails here, naming it. */
  public CnnClassifier setEarlyStoppingPatience(int v) {
    return (CnnClassifier) set(earlyStoppingPatience, v);
  }

  /** Sets {@code validationTol}; a value the param rejects fails here, naming it. */
  public CnnClassifier setValidationTol(double v) {
    return (CnnClassifier) set(validationTol, v);
  }

  /**
   * How this fit validates, or null without {@code validationIndicatorCol}; early stopping
   * without validation is refused, naming the params.
   */
  Validation.Plan validationPlan(StructType schema) {
    if (!isDefined(validationIndicatorCol)) {
      if (intParam(earlyStoppingPatience) > 0) {
        throw new IllegalArgumentException("earlyStoppingPatience=" + intParam(earlyStoppingPatience)
            + " needs validation rows: set validationIndicatorCol");
      }
      return null;
    }
    return new Validation.Plan(IndicatorReader.of(schema, $(validationIndicatorCol)), intParam(validationInterval),
        intParam(earlyStoppingPatience), doubleParam(validationTol));
  }

  /** The reader of {@code weightCol}, or null when it is not set or empty (every weight 1). */
  private WeightReader weights(StructType schema) {
    return !isDefined(weightCol) || $(weightCol).isEmpty() ? null : WeightReader.of(schema, $(weightCol));
  }

  /** Sets {@code learningRateSchedule}; a value the param rejects fails here, naming it. */
  public CnnClassifier setLearningRateSchedule(String v) {
    return (CnnClassifier) set(learningRateSchedule, v);
  }

  /** Sets {@code learningRateBoundaries}; a value the param rejects fails here, naming it. */
  public CnnClassifier setLearningRateBoundaries(int[] v) {
    return (CnnClassifier) set(learningRateBoundaries, v);
  }

  /** Sets {@code learningRateFactors}; a value the param rejects fails here, naming it. */
  public CnnClassifier setLearningRateFactors(double[] v) {
    return (CnnClassifier) set(learningRateFactors, v);
  }

  /** Sets {@code decaySteps}; a value the param rejects fails here, naming it. */
  public CnnClassifier setDecaySteps(int v) {
    return (CnnClassifier) set(decaySteps, v);
  }

  /** Sets {@code decayRate}; a value the param rejects fails here, naming it. */
  public CnnClassifier setDecayRate(double v) {
    return (CnnClassifier) set(decayRate, v);
  }

  /** Sets {@code warmupSteps}; a value the param rejects fails here, naming it. */
  public CnnClassifier setWarmupSteps(int v) {
    return (CnnClassifier) set(warmupSteps, v);
  }

  /**
   * The schedule the params describe, checked as a whole (one factor more than boundaries for
   * piecewise); a mismatch fails naming the params.
   */
  LearningRateSchedule schedule() {
    int[] boundaries = (int[]) getOrDefault(learningRateBoundaries);
    double[] factors = (double[]) getOrDefault(learningRateFactors);
    int decay = intParam(decaySteps) > 0 ? intParam(decaySteps) : intParam(maxIter);
    LearningRateSchedule s;
    switch ($(learningRateSchedule).toLowerCase(java.util.Locale.ROOT)) {
      case "piecewise" -> {
        if (factors.length != boundaries.length + 1) {
          throw new IllegalArgumentException("learningRateSchedule=piecewise needs one learningRateFactors entry more"
              + " than learningRateBoundaries, but has " + factors.length + " factors for " + boundaries.length
              + " boundaries");
        }
        s = LearningRateSchedule.piecewise(boundaries, factors);
      }
      case "cosine" -> s = LearningRateSchedule.cosine(decay);
      case "exponential" -> s = LearningRateSchedule.exponential(decay, doubleParam(decayRate));
      default -> s = LearningRateSchedule.constant();
    }
    return s.withWarmup(intParam(warmupSteps));
  }

  /** Sets {@code batchSize}; a value the param rejects fails here, naming it. */
  public CnnClassifier setBatchSize(int v) {
    return (CnnClassifier) set(batchSize, v);
  }

  /** Sets {@code maxIter}; a value the param rejects fails here, naming it. */
  public CnnClassifier setMaxIter(int v) {
    return (CnnClassifier) set(maxIter, v);
  }

  /** The {@code weightInit} param; see {@link #explainParams()} for its doc and default. */
  public Param<String> weightInit() {
    return weightInit;
  }

  /** Sets {@code weightInit}; a value the param rejects fails here, naming it. */
  public CnnClassifier setWeightInit(String v) {
    return (CnnClassifier) set(weightInit, v);
  }

  /** The {@code shiftRange} param; see {@link #explainParams()} for its doc and default. */
  public IntParam shiftRange() {
    return shiftRange;
  }

  /** Sets {@code shiftRange}; a value the param rejects fails here, naming it. */
  public CnnClassifier setShiftRange(int v) {
    return (CnnClassifier) set(shiftRange, v);
  }

  /** Sets {@code keepProb}; a value the param rejects fails here, naming it. */
  public CnnClassifier setKeepProb(double v) {
    return (CnnClassifier) set(keepProb, v);
  }

  /** Sets {@code seed}; a value the param rejects fails here, naming it. */
  public CnnClassifier setSeed(long v) {
    return (CnnClassifier) set(seed, v);
  }

  /** Sets {@code syncMode}; a value the param rejects fails here, naming it. */
  public CnnClassifier setSyncMode(String v) {
    return (CnnClassifier) set(syncMode, v);
  }

  /** Sets {@code threadsPerWorker}; a value the param rejects fails here, naming it. */
  public CnnClassifier setThreadsPerWorker(int v) {
    return (CnnClassifier) set(threadsPerWorker, v);
  }

  private int intParam(IntParam p) {
    return (Integer) getOrDefault(p);
  }

  private double doubleParam(DoubleParam p) {
    return (Double) getOrDefault(p);
  }

  @Override
  public StructType transformSchema(StructType schema) {
    ModelSpec spec = ModelSpec.parse($(model));
    FeatureReader.of(schema, $(featuresCol), spec.inputShape().size());
    LabelReader.of(schema, $(labelCol), spec.numClasses());
    validationPlan(schema);
    weights(schema);
    return new CnnClassificationModel(uid, spec.specString(), new float[0]).copyParamsFrom(this).transformSchema(schema);
  }

  @Override
  public CnnClassificationModel fit(Dataset<?> dataset) {
    if (dataset.isStreaming()) {
      // Spark's own refusal ("Queries with streaming sources must be executed with
      // writeStream.start()") does not say that training needs the rows at rest.
      throw new IllegalArgumentException("fit needs a batch DataFrame, and this one is streaming: training samples"
          + " every step's batch from all the rows. Train on a batch read of the same source (spark.read"
          + " instead of spark.readStream); the fitted model's transform does score a stream");
    }
    transformSchema(dataset.schema());
    LearningRateSchedule schedule = schedule();
    Validation.Plan validation = validationPlan(dataset.schema());
    ModelSpec spec = ModelSpec.parse($(model));
    Shift shift = shift(spec);
    if ($(syncMode).equals("barrier")) {
      // Before any reading: the initial model's 13 MB would be read for nothing.
      refuseDynamicAllocation(dataset.sparkSession().sparkContext().getConf());
    }
    float[] initial = initialWeights(dataset.sparkSession(), spec);
    FeatureReader reader = FeatureReader.of(dataset.schema(), $(featuresCol), spec.inputShape().size());
    int workers = intParam(numWorkers) > 0 ? intParam(numWorkers) : dataset.sparkSession().sparkContext().defaultParallelism();
    // The validation rows travel with the training rows (a third column) and are held out as each
    // partition is packed: no second pass over the input, and each worker validates its own share.
    // The weights (cast to double, as MLlib casts them) travel last.
    WeightReader weights = weights(dataset.schema());
    List<Column> columns = new java.util.ArrayList<>(List.of(dataset.col($(featuresCol)), dataset.col($(labelCol))));
    if (validation != null) {
      columns.add(dataset.col($(validationIndicatorCol)));
    }
    if (weights != null) {
      columns.add(dataset.col(weights.column()).cast("double"));
    }
    Dataset<Row> rows = dataset.select(columns.toArray(new Column[0]));
    int slots = $(syncMode).equals("barrier") ? slots(dataset.sparkSession().sparkContext(), workers)
        : dataset.sparkSession().sparkContext().defaultParallelism();
    if ($(syncMode).equals("barrier") && workers > slots) {
      // Spark would otherwise retry for minutes waiting for slots that never come.
      throw new IllegalArgumentException("numWorkers=" + workers + " but the cluster runs at most " + slots
          + " tasks at once (spark.default.parallelism); barrier training needs one slot per worker."
          + " Lower numWorkers or use syncMode=driver");
    }
    long t0 = System.nanoTime();
    // An empty input is found by the workers (the sizes they share), not by a Spark job of its own.
    int partitions = rows.rdd().getNumPartitions();
    boolean packFirst = $(syncMode).equals("barrier") && partitions > workers;
    if (partitions < workers || (partitions > workers && !packFirst)) {
      rows = rows.repartition(workers);
    }
    org.apache.spark.SparkContext sc = dataset.sparkSession().sparkContext();
    Checkpoints checkpoints = checkpoints(sc.hadoopConfiguration(), spec);
    org.apache.spark.broadcast.Broadcast<float[]> start = initial == null ? null
        : sc.broadcast(initial, scala.reflect.ClassTag$.MODULE$.apply(float[].class));
    Settings settings = new Settings(spec.specString(), reader,
        LabelReader.of(dataset.schema(), $(labelCol), spec.numClasses()), $(optimizer),
        (float) doubleParam(learningRate), intParam(batchSize), intParam(maxIter), (float) doubleParam(keepProb),
        $(weightInit).equalsIgnoreCase("he"), (Long) getOrDefault(seed),
        isSet(threadsPerWorker) ? intParam(threadsPerWorker)
            : Integer.parseInt(dataset.sparkSession().sparkContext().getConf().get("spark.task.cpus", "1")),
        checkpoints, intParam(checkpointInterval), $(device), $(precision),
        $(syncMode).equals("barrier") ? ProgressReports.attach(sc, intParam(maxIter), intParam(batchSize)) : null,
        BarrierTraining.encrypts(sc.getConf()), schedule, validation, shift, start, weights);
    TrainResult r;
    try {
      r = Training.run(rows, settings, workers, $(syncMode).equals("barrier"), packFirst);
    } finally {
      ProgressReports.detach(sc, settings.progress());
      if (start != null) {
        start.destroy();
      }
    }
    double seconds = (System.nanoTime() - t0) / 1e9;
    CnnClassificationModel m = new CnnClassificationModel(uid, spec.specString(), r.weights());
    int weightsStep = validation != null && validation.keepsBest() && r.validation().bestStep() > 0
        ? r.validation().bestStep() : r.loss().length;
    m.setSummary(new CnnTrainingSummary(r.loss(), r.accuracy(), seconds, r.stepSeconds(),
        (long) Math.max(0, r.loss().length - r.resumedFromStep()) * intParam(batchSize), workers, $(syncMode),
        r.resumedFromStep(), r.validation(), weightsStep, r.exchangeSeconds()));
    if (r.validation() != null && r.validation().stopped()) {
      LOG.info("early stopping after step {}: the validation loss has not improved by more than {} in {} evaluations;"
          + " the model holds the weights of step {}", r.loss().length, doubleParam(validationTol),
          intParam(earlyStoppingPatience), weightsStep);
    }
    LOG.info(String.format("trained %s: %d steps of %d (from step %d) on %d workers (%s) in %.1f s, %.0f images/s,"
        + " final loss %.4f", spec.name(), r.loss().length, intParam(batchSize), r.resumedFromStep(), workers, $(syncMode), seconds,
        m.summary().imagesPerSecond(), r.loss().length == 0 ? Double.NaN : r.loss()[r.loss().length - 1]));
    return copyValues(m.setParent(this), ParamMap.empty());
  }

  /**
   * The weights of the model at {@code initialModel}, or null when it is not set; a path that holds
   * no saved model, or one of another network, fails naming the param.
   */
  private float[] initialWeights(org.apache.spark.sql.SparkSession spark, ModelSpec spec) {
    if (!isDefined(initialModel)) {
      return null;
    }
    String path = $(initialModel);
    String refused = "initialModel=" + path + " holds no CnnClassificationModel saved with save(path): ";
    // Looked for first: Spark's reader would log a stack trace for a missing metadata directory.
    org.apache.hadoop.fs.Path metadata = new org.apache.hadoop.fs.Path(path, "metadata");
    try {
      if (!metadata.getFileSystem(spark.sparkContext().hadoopConfiguration()).exists(metadata)) {
        throw new IllegalArgumentException(refused + metadata + " does not exist");
      }
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(refused + e.getMessage(), e);
    }
    CnnClassificationModel m;
    try {
      m = CnnClassificationModel.read().session(spark).load(path);
    } catch (Exception e) {
      // Spark's AnalysisException (a missing path) is checked in Java's terms but thrown undeclared.
      throw new IllegalArgumentException(refused + e.getMessage(), e);
    }
    String theirs = m.getOrDefault(m.model());
    ModelSpec theirSpec = ModelSpec.parse(theirs);
    if (theirSpec.specString().equals(spec.specString())) {
      return m.weights();
    }
    // A new head: the same layers up to the last dense layer, which may have other units (other
    // classes). The layers before it start from the saved weights, the head from weightInit.
    int head = spec.lastDenseLayer();
    if (head >= 1 && theirSpec.lastDenseLayer() == head
        && spec.upTo(head).text().equals(theirSpec.upTo(head).text())) {
      ModelSpec body = spec.upTo(head);
      LOG.info("initialModel: layers {} to {} start from the weights in {}; {} ({} classes) starts afresh",
          spec.layerNames().get(0), spec.layerNames().get(head - 1), path, spec.layerNames().get(head),
          spec.numClasses());
      return java.util.Arrays.copyOf(m.weights(), Math.toIntExact(body.paramCount()));
    }
    throw new IllegalArgumentException("initialModel=" + path + " holds a model of network " + theirs
        + ", but model is " + $(model) + "; a fit starts from the weights of the same network, or of one that"
        + " differs only from its last dense layer on (a new head, for other classes)");
  }

  /**
   * The training images' random shifts, or null without; a shift the model's input cannot take
   * fails naming the param.
   */
  private Shift shift(ModelSpec spec) {
    int range = intParam(shiftRange);
    if (range == 0) {
      return null;
    }
    dev.convspark.tensor.Shape in = spec.inputShape();
    if (!in.isImage()) {
      throw new IllegalArgumentException("shiftRange=" + range + " shifts images, but model " + $(model)
          + " takes a vector of " + in.size() + " features; give the model an image input (inHxWxC)"
          + " or set shiftRange 0");
    }
    if (range >= Math.min(in.height(), in.width())) {
      throw new IllegalArgumentException("shiftRange=" + range + " must be less than the model's input height"
          + " and width (" + in.height() + " x " + in.width() + ")");
    }
    return new Shift(in.height(), in.width(), in.channels(), range);
  }

  /**
   * Refuses barrier training where Spark would refuse its barrier stage: under dynamic allocation
   * (SPARK-24942), which Spark applies on a cluster, or on a local master with
   * {@code spark.dynamicAllocation.testing}. Said before the wait for executors, and in terms of
   * the param, since {@code syncMode=driver} trains there.
   */
  static void refuseDynamicAllocation(org.apache.spark.SparkConf conf) {
    String master = conf.get("spark.master", "");
    boolean local = master.equals("local") || master.startsWith("local[");
    if (conf.getBoolean("spark.dynamicAllocation.enabled", false)
        && (!local || conf.getBoolean("spark.dynamicAllocation.testing", false))) {
      throw new IllegalArgumentException("syncMode=barrier runs the workers as a Spark barrier stage, and Spark"
          + " runs none while dynamic allocation is on (spark.dynamicAllocation.enabled=true). Use syncMode=driver,"
          + " which trains under dynamic allocation (one Spark job a step), or start the application with"
          + " spark.dynamicAllocation.enabled=false");
    }
  }

  /**
   * The tasks the cluster runs at once. A cluster whose executors are still registering (a
   * {@code fit} right after start-up) counts only Spark's floor of 2: then, unless
   * {@code spark.default.parallelism} fixes the count, wait for executors up to
   * {@code spark.scheduler.maxRegisteredResourcesWaitingTime} (30 s by default), as Spark's own
   * scheduler does. A local master has all its slots at once.
   */
  static int slots(org.apache.spark.SparkContext sc, int wanted) {
    int slots = sc.defaultParallelism();
    if (slots >= wanted || sc.isLocal() || sc.getConf().contains("spark.default.parallelism")) {
      return slots;
    }
    long deadline = System.nanoTime()
        + sc.getConf().getTimeAsMs("spark.scheduler.maxRegisteredResourcesWaitingTime", "30s") * 1_000_000L;
    while (slots < wanted && System.nanoTime() < deadline) {
      try {
        Thread.sleep(100);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        break;
      }
      slots = sc.defaultParallelism();
    }
    return slots;
  }

  /**
   * The checkpoints of this fit, or null when {@code checkpointDir} is not set or the interval is
   * -1. A checkpoint already there must be of this model and optimizer and not beyond
   * {@code maxIter}: checked here, on the driver, before any task starts.
   */
  private Checkpoints checkpoints(org.apache.hadoop.conf.Configuration conf, ModelSpec spec) {
    if (!isDefined(checkpointDir) || intParam(checkpointInterval) == -1) {
      return null;
    }
    Checkpoints c = new Checkpoints($(checkpointDir), conf);
    try {
      int latest = c.latest();
      if (latest > intParam(maxIter)) {
        throw new IllegalArgumentException("checkpointDir " + $(checkpointDir) + " holds a checkpoint of step " + latest
            + ", beyond maxIter=" + intParam(maxIter) + "; raise maxIter or use another checkpointDir");
      }
      if (latest > 0) {
        c.load(latest, spec, $(optimizer));
        LOG.info("checkpointDir {} holds a checkpoint of step {}: training resumes from it", $(checkpointDir), latest);
      }
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException("checkpointDir " + $(checkpointDir) + ": " + e.getMessage(), e);
    }
    return c;
  }

  @Override
  public CnnClassifier copy(ParamMap extra) {
    return defaultCopy(extra);
  }

  /** A reader for {@link #load}. */
  public static MLReader<CnnClassifier> read() {
    return new DefaultParamsReader<>();
  }

  /** Loads an estimator saved with {@code save(path)}. */
  public static CnnClassifier load(String path) {
    return read().load(path);
  }

}
