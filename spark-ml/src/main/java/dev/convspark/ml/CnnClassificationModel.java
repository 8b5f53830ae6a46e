package dev.convspark.ml;

import dev.convspark.ml.training.EngineCache;
import dev.convspark.ml.training.FeatureReader;
import dev.convspark.ml.training.LabelReader;
import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.io.ModelFile;
import dev.convspark.tensor.io.ModelState;
import dev.convspark.tensor.layers.SoftmaxCrossEntropy;
import dev.convspark.tensor.spec.ModelSpec;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.ml.Model;
import org.apache.spark.ml.attribute.AttributeGroup;
import org.apache.spark.ml.attribute.NominalAttribute;
import org.apache.spark.ml.linalg.Vectors;
import org.apache.spark.ml.param.IntParam;
import org.apache.spark.ml.param.Param;
import org.apache.spark.ml.param.ParamMap;
import org.apache.spark.ml.util.DefaultParamsReader;
import org.apache.spark.ml.util.DefaultParamsWriter;
import org.apache.spark.ml.util.MLReader;
import org.apache.spark.ml.util.MLWritable;
import org.apache.spark.ml.util.MLWriter;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;
import scala.Option;

/**
 * A trained network as a Spark ML {@link Model}: {@code transform} appends MLlib's classifier
 * columns, {@code rawPrediction} (the logits, a Vector), {@code probability} (their softmax, a
 * Vector) and {@code prediction} (the 0-based class index, a double: the most probable class, or
 * with {@code thresholds} set the largest probability / threshold's); set a column name to the
 * empty string to leave that column out. Scores in batches on each partition. Saves and loads with
 * MLlib's {@code save}/{@code load}: MLlib's metadata JSON beside the engine's model file.
 */
public final class CnnClassificationModel extends Model<CnnClassificationModel> implements MLWritable {
  private static final long serialVersionUID = 1L;

  private final String uid;
  private final String specString;
  private final float[] weights;
  private final Param<String> featuresCol;
  private final Param<String> labelCol;
  private final Param<String> predictionCol;
  private final Param<String> probabilityCol;
  private final Param<String> rawPredictionCol;
  private final Param<String> model;
  private final IntParam threadsPerWorker;
  private final Param<String> device;
  private final Param<String> precision;
  private final IntParam inferenceBatchSize;
  private final org.apache.spark.ml.param.DoubleArrayParam thresholds;
  private final Param<String> weightCol;
  private transient CnnTrainingSummary summary;
  /**
   * The weights as broadcast for scoring, and the context that holds them: shared with this
   * model's copies, which hold the same weights (a featurizer scores through a copy per call).
   */
  private transient BroadcastCache broadcast = new BroadcastCache();

  /** The broadcast of a model's weights and its context; null fields until the first scoring. */
  private static final class BroadcastCache {
    private Broadcast<float[]> weights;
    private org.apache.spark.SparkContext context;
  }

  CnnClassificationModel(String uid, String specString, float[] weights) {
    this.uid = uid;
    this.specString = specString;
    this.weights = weights;
    // Params take their owner's uid when created, so they are created after it is set.
    this.featuresCol = CnnParams.featuresCol(this);
    this.labelCol = CnnParams.labelCol(this);
    this.predictionCol = CnnParams.predictionCol(this);
    this.probabilityCol = CnnParams.probabilityCol(this);
    this.rawPredictionCol = CnnParams.rawPredictionCol(this);
    this.model = CnnParams.model(this);
    this.threadsPerWorker = CnnParams.threadsPerWorker(this);
    this.device = CnnParams.device(this);
    this.precision = CnnParams.precision(this);
    this.inferenceBatchSize = CnnParams.inferenceBatchSize(this);
    this.thresholds = CnnParams.thresholds(this);
    this.weightCol = CnnParams.weightCol(this);
    setDefault(device, "cpu");
    setDefault(precision, "fp32");
    setDefault(inferenceBatchSize, 256);
    setDefault(featuresCol, "features");
    setDefault(labelCol, "label");
    setDefault(predictionCol, "prediction");
    setDefault(probabilityCol, "probability");
    setDefault(rawPredictionCol, "rawPrediction");
    setDefault(threadsPerWorker, 1);
    set(model, specString);
  }

  @Override
  public String uid() {
    return uid;
  }

  /** @see CnnClassifier#featuresCol() */
  public Param<String> featuresCol() {
    return featuresCol;
  }

  /** Name of the label column {@link #evaluate} reads (default {@code label}); scoring needs none. */
  public Param<String> labelCol() {
    return labelCol;
  }

  /** Sets {@code labelCol}; a value the param rejects fails here, naming it. */
  public CnnClassificationModel setLabelCol(String v) {
    return (CnnClassificationModel) set(labelCol, v);
  }

  /**
   * Scores {@code dataset} and measures the predictions against its {@code labelCol}, as MLlib's
   * classification models' {@code evaluate} does: accuracy, per-label and weighted precision,
   * recall and F-measure, the confusion matrix; with {@code weightCol} set (as the estimator's was,
   * or by {@link #setWeightCol}), each weighted by the rows' weights. Runs one Spark job; a label
   * column that is missing or not numeric, a null label, one that is not a class index of this
   * model, a bad weight, or an empty dataset fails naming the column.
   */
  public CnnClassificationSummary evaluate(Dataset<?> dataset) {
    CnnClassificationModel m = $(predictionCol).isEmpty()
        ? copy(ParamMap.empty()).setPredictionCol("prediction") : this;
    int classes = numClasses();
    LabelReader.of(dataset.schema(), $(labelCol), classes);
    String weights = null;
    if (isDefined(weightCol) && !$(weightCol).isEmpty()) {
      // Set by the estimator, so perhaps not by the caller: the evaluation is weighted as MLlib's are.
      weights = dev.convspark.ml.training.WeightReader.of(dataset.schema(), $(weightCol), ". evaluate weighs the rows"
          + " by weightCol (set when the model was fitted with it); setWeightCol(\"\") weighs every row 1").column();
    }
    return new CnnClassificationSummary(m.transform(dataset), m.getOrDefault(m.predictionCol()), $(labelCol), weights,
        classes);
  }

  /**
   * The {@code weightCol} param: the rows' weights in {@link #evaluate} (not set or empty: every
   * row weighs 1); the estimator's value when it had one. Scoring does not read it.
   */
  public Param<String> weightCol() {
    return weightCol;
  }

  /** Sets {@code weightCol}; see {@link #weightCol()}. */
  public CnnClassificationModel setWeightCol(String v) {
    return (CnnClassificationModel) set(weightCol, v);
  }

  /** Name of the prediction column (default {@code prediction}). */
  public Param<String> predictionCol() {
    return predictionCol;
  }

  /** Name of the probability column (default {@code probability}). */
  public Param<String> probabilityCol() {
    return probabilityCol;
  }

  /** Name of the raw prediction (logits) column (default {@code rawPrediction}). */
  public Param<String> rawPredictionCol() {
    return rawPredictionCol;
  }

  /** The network's spec; fixed by training. */
  public Param<String> model() {
    return model;
  }

  /**
   * Engine threads per task while scoring: in {@code transform}, {@code spark.task.cpus} when not set;
   * in {@code predict(Vector)} and its like, 1 when not set.
   */
  public IntParam threadsPerWorker() {
    return threadsPerWorker;
  }

  /** Sets {@code featuresCol}; a value the param rejects fails here, naming it. */
  public CnnClassificationModel setFeaturesCol(String v) {
    return (CnnClassificationModel) set(featuresCol, v);
  }

  /** Sets {@code predictionCol}; a value the param rejects fails here, naming it. */
  public CnnClassificationModel setPredictionCol(String v) {
    return (CnnClassificationModel) set(predictionCol, v);
  }

  /** Sets {@code probabilityCol}; a value the param rejects fails here, naming it. */
  public CnnClassificationModel setProbabilityCol(String v) {
    return (CnnClassificationModel) set(probabilityCol, v);
  }

  /** Sets {@code rawPredictionCol}; a value the param rejects fails here, naming it. */
  public CnnClassificationModel setRawPredictionCol(String v) {
    return (CnnClassificationModel) set(rawPredictionCol, v);
  }

  /** The {@code device} param; see {@link #explainParams()} for its doc and default. */
  public Param<String> device() {
    return device;
  }

  /** Sets {@code device}; a value the param rejects fails here, naming it. */
  public CnnClassificationModel setDevice(String v) {
    return (CnnClassificationModel) set(device, v);
  }

  /** The {@code precision} param; see {@link #explainParams()} for its doc and default. */
  public Param<String> precision() {
    return precision;
  }

  /** Sets {@code precision} ({@code fp32} or {@code tf32}); a value the param rejects fails here, naming it. */
  public CnnClassificationModel setPrecision(String v) {
    return (CnnClassificationModel) set(precision, v);
  }

  /** The {@code inferenceBatchSize} param; see {@link #explainParams()} for its doc and default. */
  public IntParam inferenceBatchSize() {
    return inferenceBatchSize;
  }

  /** Sets {@code inferenceBatchSize}; a value the param rejects fails here, naming it. */
  public CnnClassificationModel setInferenceBatchSize(int v) {
    return (CnnClassificationModel) set(inferenceBatchSize, v);
  }

  /** Sets {@code threadsPerWorker}; a value the param rejects fails here, naming it. */
  public CnnClassificationModel setThreadsPerWorker(int v) {
    return (CnnClassificationModel) set(threadsPerWorker, v);
  }

  /** The value of {@code featuresCol}. */
  public String getFeaturesCol() {
    return $(featuresCol);
  }

  /** The {@code thresholds} param (unset by default); see {@link #explainParams()} for its doc. */
  public org.apache.spark.ml.param.DoubleArrayParam thresholds() {
    return thresholds;
  }

  /**
   * Sets {@code thresholds}, one a class: the prediction becomes the class with the largest
   * probability / threshold, as in MLlib's probabilistic classifiers. A value the param rejects, or
   * one whose length is not {@link #numClasses()}, fails here, naming it.
   */
  public CnnClassificationModel setThresholds(double[] v) {
    set(thresholds, v);
    checkThresholds(v, numClasses());
    return this;
  }

  /** The value of {@code thresholds}; fails as MLlib's getters do when it is not set. */
  public double[] getThresholds() {
    return $(thresholds);
  }

  /** Number of classes the model predicts. */
  public int numClasses() {
    return ModelSpec.parse(specString).numClasses();
  }

  /**
   * A transformer that gives the output of the layer before this network's last dense layer as a
   * Vector column (deep-mnist: {@code dropout5}, its first dense layer's 1,024 values after the
   * ReLU, dropout being off when scoring): features for another model. It reads this model's
   * {@code featuresCol} and takes its {@code device}, {@code precision} and threads.
   *
   * @throws IllegalArgumentException for a network with no layer before its last dense layer
   */
  public CnnFeaturizer featurizer() {
    return CnnFeaturizer.of(this, null, weights);
  }

  /**
   * As {@link #featurizer()} for the layer named {@code layer}, one of the network's layers in the
   * engine's names (deep-mnist: conv1, relu1, pool1, conv2, relu2, pool2, flatten3, dense1, relu4,
   * dropout5, dense2); an image layer's output is flattened height, width, channel.
   *
   * @throws IllegalArgumentException naming the network's layers, for a layer it does not have
   */
  public CnnFeaturizer featurizer(String layer) {
    return CnnFeaturizer.of(this, java.util.Objects.requireNonNull(layer, "layer"), weights);
  }

  /**
   * The model in a line, as MLlib's models print themselves: its uid, network, classes and
   * features, e.g. {@code CnnClassificationModel: uid=cnnClassifier_..., model=deep-mnist,
   * numClasses=10, numFeatures=784}.
   */
  @Override
  public String toString() {
    return "CnnClassificationModel: uid=" + uid + ", model=" + ModelSpec.parse(specString).name() + ", numClasses="
        + numClasses() + ", numFeatures=" + numFeatures();
  }

  /** The number of features (input values) a row's features hold, as MLlib's prediction models say it. */
  public int numFeatures() {
    return ModelSpec.parse(specString).inputShape().size();
  }

  /**
   * The raw prediction (the logits, one a class) for one row's features, as MLlib's classification
   * models give it outside a DataFrame; computed on this JVM's engine with the model's
   * {@code device}, {@code precision} and {@code threadsPerWorker}, kept between calls on a thread.
   *
   * @throws IllegalArgumentException when {@code features} does not hold {@link #numFeatures()}
   *                                  finite values
   */
  public org.apache.spark.ml.linalg.Vector predictRaw(org.apache.spark.ml.linalg.Vector features) {
    float[] logits = logits("predictRaw", features);
    return Vectors.dense(toDouble(logits, 0, logits.length));
  }

  /** The class probabilities (the softmax of {@link #predictRaw}) for one row's features. */
  public org.apache.spark.ml.linalg.Vector predictProbability(org.apache.spark.ml.linalg.Vector features) {
    float[] logits = logits("predictProbability", features);
    float[] probs = new float[logits.length];
    SoftmaxCrossEntropy.softmax(logits, 1, logits.length, probs);
    return Vectors.dense(toDouble(probs, 0, probs.length));
  }

  /**
   * The predicted class (0-based, as a double) for one row's features: the largest logit's, or with
   * {@code thresholds} set the class with the largest probability / threshold, as {@code transform}
   * predicts it.
   */
  public double predict(org.apache.spark.ml.linalg.Vector features) {
    float[] logits = logits("predict", features);
    double[] t = thresholdsOrNull(logits.length);
    float[] probs = null;
    if (t != null) {
      probs = new float[logits.length];
      SoftmaxCrossEntropy.softmax(logits, 1, logits.length, probs);
    }
    return prediction(logits, probs, 0, logits.length, t);
  }

  /**
   * The class predicted from one row's logits and probabilities at {@code off}: the largest logit's
   * without thresholds (the first on a tie), else the largest probability / threshold's, a 0
   * threshold counting as infinitely large (as MLlib's {@code probability2prediction}).
   */
  static int prediction(float[] logits, float[] probs, int off, int classes, double[] thresholds) {
    int best = 0;
    if (thresholds == null) {
      for (int c = 1; c < classes; c++) {
        if (logits[off + c] > logits[off + best]) {
          best = c;
        }
      }
      return best;
    }
    double bestScore = Double.NEGATIVE_INFINITY;
    for (int c = 0; c < classes; c++) {
      double score = thresholds[c] == 0 ? Double.POSITIVE_INFINITY : probs[off + c] / thresholds[c];
      if (score > bestScore) {
        best = c;
        bestScore = score;
      }
    }
    return best;
  }

  /** {@code thresholds}' value checked against the model's classes, or null when it is not set. */
  private double[] thresholdsOrNull(int classes) {
    if (!isDefined(thresholds)) {
      return null;
    }
    double[] t = $(thresholds);
    checkThresholds(t, classes);
    return t;
  }

  private static void checkThresholds(double[] t, int classes) {
    if (t.length != classes) {
      throw new IllegalArgumentException("thresholds holds " + t.length + " values but the model predicts " + classes
          + " classes; give one threshold a class");
    }
  }

  float[] logits(String method, org.apache.spark.ml.linalg.Vector features) {
    // The spec parsed once a call: this is the single-row path, called row after row.
    ModelSpec spec = ModelSpec.parse(specString);
    int size = spec.inputShape().size();
    if (features == null) {
      throw new IllegalArgumentException(method + ": features is null; the model's input needs " + size + " values");
    }
    if (features.size() != size) {
      throw new IllegalArgumentException(method + ": features holds " + features.size()
          + " values but the model's input needs " + size);
    }
    double[] a = features.toArray();
    float[] x = new float[size];
    for (int i = 0; i < size; i++) {
      x[i] = (float) a[i];
      if (!Float.isFinite(x[i])) {
        throw new IllegalArgumentException(method + ": features holds a non-finite value (" + a[i] + ") at position " + i);
      }
    }
    float[] logits = new float[spec.numClasses()];
    EngineCache.runner(specString, (Integer) getOrDefault(threadsPerWorker), $(device), $(precision), weights)
        .predictLogits(x, 1, logits);
    return logits;
  }

  /** A copy of the trained parameters (the engine's flat buffer). */
  public float[] weights() {
    return weights.clone();
  }

  /** The training summary, available on a model just fitted (not on one loaded). */
  public CnnTrainingSummary summary() {
    if (summary == null) {
      throw new IllegalStateException("no training summary: this model was loaded, not fitted in this session");
    }
    return summary;
  }

  /** Whether {@link #summary()} is available. */
  public boolean hasSummary() {
    return summary != null;
  }

  void setSummary(CnnTrainingSummary s) {
    this.summary = s;
  }

  @Override
  public StructType transformSchema(StructType schema) {
    ModelSpec spec = ModelSpec.parse(specString);
    FeatureReader.of(schema, $(featuresCol), spec.inputShape().size());
    thresholdsOrNull(spec.numClasses());
    List<StructField> fields = new ArrayList<>(List.of(schema.fields()));
    for (String c : outputColumns()) {
      if (List.of(schema.fieldNames()).contains(c)) {
        throw new IllegalArgumentException("output column '" + c + "' already exists");
      }
    }
    if (!$(rawPredictionCol).isEmpty()) {
      fields.add(new AttributeGroup($(rawPredictionCol), spec.numClasses()).toStructField());
    }
    if (!$(probabilityCol).isEmpty()) {
      fields.add(new AttributeGroup($(probabilityCol), spec.numClasses()).toStructField());
    }
    if (!$(predictionCol).isEmpty()) {
      fields.add(NominalAttribute.defaultAttr().withName($(predictionCol))
          .withNumValues(spec.numClasses()).toStructField());
    }
    return new StructType(fields.toArray(new StructField[0]));
  }

  private List<String> outputColumns() {
    List<String> out = new ArrayList<>();
    for (String c : new String[] {$(rawPredictionCol), $(probabilityCol), $(predictionCol)}) {
      if (!c.isEmpty()) {
        out.add(c);
      }
    }
    return out;
  }

  @Override
  public Dataset<Row> transform(Dataset<?> dataset) {
    Dataset<Row> df = dataset.toDF();
    StructType outSchema = transformSchema(df.schema());
    ModelSpec spec = ModelSpec.parse(specString);
    int size = spec.inputShape().size();
    int classes = spec.numClasses();
    FeatureReader reader = FeatureReader.of(df.schema(), $(featuresCol), size);
    int featureIndex = df.schema().fieldIndex($(featuresCol));
    boolean raw = !$(rawPredictionCol).isEmpty();
    boolean prob = !$(probabilityCol).isEmpty();
    boolean pred = !$(predictionCol).isEmpty();
    Broadcast<float[]> w = broadcastWeights(df.sparkSession().sparkContext());
    Scorer score = new Scorer(specString, scoringThreads(df.sparkSession().sparkContext().getConf()), $(device),
        $(precision),
        (Integer) getOrDefault(inferenceBatchSize), reader, featureIndex, raw, prob, pred,
        thresholdsOrNull(classes), w);
    Dataset<Row> scored = df.mapPartitions(score, Encoders.row(outSchema));
    // The rows' encoder keeps the columns' types but not their metadata: set MLlib's back on.
    for (String c : outputColumns()) {
      scored = scored.withMetadata(c, outSchema.apply(c).metadata());
    }
    return scored;
  }

  /**
   * The engine threads a {@code transform} task scores with: {@code threadsPerWorker} when set, else
   * {@code spark.task.cpus}, the cores Spark reserves for each task (as training does), so that an
   * executor that runs one task per four cores scores on four.
   */
  int scoringThreads(org.apache.spark.SparkConf conf) {
    return isSet(threadsPerWorker) ? (Integer) $(threadsPerWorker) : conf.getInt("spark.task.cpus", 1);
  }

  /**
   * The weights broadcast once per model and SparkContext, not once per {@code transform} (13 MB
   * serialised and compressed each time); Spark's cleaner drops the broadcast with the model.
   */
  Broadcast<float[]> broadcastWeights(org.apache.spark.SparkContext sc) {
    BroadcastCache cache;
    synchronized (this) {
      // Null after deserialisation (transient).
      broadcast = broadcast == null ? new BroadcastCache() : broadcast;
      cache = broadcast;
    }
    synchronized (cache) {
      if (cache.weights == null || cache.context != sc || sc.isStopped()) {
        cache.weights = sc.broadcast(weights, scala.reflect.ClassTag$.MODULE$.apply(float[].class));
        cache.context = sc;
      }
      return cache.weights;
    }
  }

  /**
   * Scores a partition in batches on this executor's engine. A static class holding only what it
   * needs: the weights travel once per executor, in the broadcast, never with the task.
   */
  private static final class Scorer implements MapPartitionsFunction<Row, Row> {
    private static final long serialVersionUID = 1L;
    private final String specText;
    private final int threads;
    private final String device;
    private final String precision;
    private final int batch;
    private final FeatureReader reader;
    private final int featureIndex;
    private final boolean raw;
    private final boolean prob;
    private final boolean pred;
    /** null: the largest logit is predicted. */
    private final double[] thresholds;
    private final Broadcast<float[]> weights;

    Scorer(String specText, int threads, String device, String precision, int batch, FeatureReader reader,
           int featureIndex, boolean raw, boolean prob, boolean pred, double[] thresholds, Broadcast<float[]> weights) {
      this.specText = specText;
      this.threads = threads;
      this.device = device;
      this.precision = precision;
      this.batch = batch;
      this.reader = reader;
      this.featureIndex = featureIndex;
      this.raw = raw;
      this.prob = prob;
      this.pred = pred;
      this.thresholds = thresholds;
      this.weights = weights;
    }

    @Override
    public Iterator<Row> call(Iterator<Row> rows) {
      ModelSpec spec = ModelSpec.parse(specText);
      int size = spec.inputShape().size();
      int classes = spec.numClasses();
      // A broadcast's value is one array per executor: copied into a thread's replica once.
      ModelRunner runner = EngineCache.runner(specText, threads, device, precision, weights.value());
      float[] x = new float[batch * size];
      float[] logits = new float[batch * classes];
      float[] probs = new float[batch * classes];
      return new Iterator<>() {
        private final List<Row> in = new ArrayList<>();
        private int pos;

        @Override
        public boolean hasNext() {
          if (pos < in.size()) {
            return true;
          }
          in.clear();
          pos = 0;
          while (rows.hasNext() && in.size() < batch) {
            Row r = rows.next();
            reader.read(r, featureIndex, x, in.size() * size);
            in.add(r);
          }
          if (in.isEmpty()) {
            return false;
          }
          runner.predictLogits(x, in.size(), logits);
          SoftmaxCrossEntropy.softmax(logits, in.size(), classes, probs);
          return true;
        }

        @Override
        public Row next() {
          if (!hasNext()) {
            throw new java.util.NoSuchElementException();
          }
          Row r = in.get(pos);
          int o = pos * classes;
          pos++;
          List<Object> values = new ArrayList<>(r.size() + 3);
          for (int i = 0; i < r.size(); i++) {
            values.add(r.get(i));
          }
          if (raw) {
            values.add(Vectors.dense(toDouble(logits, o, classes)));
          }
          if (prob) {
            values.add(Vectors.dense(toDouble(probs, o, classes)));
          }
          if (pred) {
            values.add((double) prediction(logits, probs, o, classes, thresholds));
          }
          return RowFactory.create(values.toArray());
        }
      };
    }
  }

  static double[] toDouble(float[] a, int off, int n) {
    double[] d = new double[n];
    for (int i = 0; i < n; i++) {
      d[i] = a[off + i];
    }
    return d;
  }

  @Override
  public CnnClassificationModel copy(ParamMap extra) {
    CnnClassificationModel m = new CnnClassificationModel(uid, specString, weights);
    m.summary = summary;
    synchronized (this) {
      m.broadcast = broadcast == null ? m.broadcast : broadcast;
    }
    return copyValues(m, extra).setParent(parent());
  }

  @Override
  public MLWriter write() {
    return new Writer(this);
  }

  @Override
  public void save(String path) throws IOException {
    write().save(path);
  }

  /** A reader for {@link #load}. */
  public static MLReader<CnnClassificationModel> read() {
    return new Reader();
  }

  /** Loads a model saved with {@code save(path)}. */
  public static CnnClassificationModel load(String path) {
    return read().load(path);
  }

  private static final String DATA_FILE = "data/model.cspk";

  private static final class Writer extends MLWriter {
    private final CnnClassificationModel instance;

    Writer(CnnClassificationModel instance) {
      this.instance = instance;
    }

    @Override
    public void saveImpl(String path) {
      SparkSession spark = sparkSession();
      DefaultParamsWriter.saveMetadata(instance, path, spark);
      Path file = new Path(path, DATA_FILE);
      try {
        FileSystem fs = file.getFileSystem(spark.sparkContext().hadoopConfiguration());
        try (OutputStream out = fs.create(file, true)) {
          ModelFile.write(new ModelState(ModelSpec.parse(instance.specString), instance.weights, null), out);
        }
      } catch (IOException e) {
        throw new UncheckedIOException("could not write " + file + ": " + e.getMessage(), e);
      }
    }
  }

  private static final class Reader extends MLReader<CnnClassificationModel> {
    @Override
    public CnnClassificationModel load(String path) {
      SparkSession spark = sparkSession();
      DefaultParamsReader.Metadata meta = DefaultParamsReader.loadMetadata(path, spark, CnnClassificationModel.class.getName());
      Path file = new Path(path, DATA_FILE);
      ModelState state;
      try {
        FileSystem fs = file.getFileSystem(spark.sparkContext().hadoopConfiguration());
        try (InputStream in = fs.open(file)) {
          state = ModelFile.read(in, file.toString());
        }
      } catch (IOException e) {
        throw new UncheckedIOException("could not read the model at " + path + ": " + e.getMessage(), e);
      }
      CnnClassificationModel m = new CnnClassificationModel(meta.uid(), state.spec().specString(), state.params());
      meta.getAndSetParams(m, Option.empty());
      return m;
    }
  }

  /** Copies the values of the params this model shares with {@code other} (used for schema checks). */
  CnnClassificationModel copyParamsFrom(org.apache.spark.ml.param.Params other) {
    for (Param<String> p : List.of(featuresCol, predictionCol, probabilityCol, rawPredictionCol)) {
      set(p, (String) other.getOrDefault(other.getParam(p.name())));
    }
    if (other.isDefined(other.getParam(thresholds.name()))) {
      set(thresholds, (double[]) other.getOrDefault(other.getParam(thresholds.name())));
    }
    return this;
  }
}
