package dev.convspark.ml;

import dev.convspark.tensor.spec.ModelSpec;
import java.util.List;
import org.apache.spark.ml.Transformer;
import org.apache.spark.ml.param.IntParam;
import org.apache.spark.ml.param.Param;
import org.apache.spark.ml.param.ParamMap;
import org.apache.spark.ml.util.DefaultParamsReader;
import org.apache.spark.ml.util.DefaultParamsWriter;
import org.apache.spark.ml.util.MLReader;
import org.apache.spark.ml.util.MLWritable;
import org.apache.spark.ml.util.MLWriter;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.StructType;
import scala.Option;

/**
 * A trained network's inner layer as features: {@code transform} appends the output of one layer
 * of a {@link CnnClassificationModel} (by default the one before its last dense layer: 1,024
 * values for deep-mnist) as a Vector column, for another MLlib model to learn from, as transfer
 * learning does. Made by {@link CnnClassificationModel#featurizer()}; scores as the model does
 * (in batches on each partition, on its {@code device}), and saves and loads with MLlib's
 * {@code save}/{@code load}, in a Pipeline too.
 */
public final class CnnFeaturizer extends Transformer implements MLWritable {
  private static final long serialVersionUID = 1L;

  private final String uid;
  /** The network up to the layer, as a model whose raw prediction is the layer's output. */
  private final CnnClassificationModel network;
  private final Param<String> inputCol;
  private final Param<String> outputCol;
  private final Param<String> layer;
  private final Param<String> device;
  private final Param<String> precision;
  private final IntParam threadsPerWorker;
  private final IntParam inferenceBatchSize;

  CnnFeaturizer(String uid, CnnClassificationModel network, String layerName) {
    this.uid = uid;
    this.network = network;
    this.inputCol = new Param<>(this, "inputCol", "input column name: the features the network reads (as the"
        + " model's featuresCol: an image struct, a Vector, an array or binary)");
    this.outputCol = new Param<>(this, "outputCol", "output column name: the layer's output, a Vector");
    this.layer = new Param<>(this, "layer", "the layer whose output this gives (fixed when the featurizer is made)");
    this.device = CnnParams.device(this);
    this.precision = CnnParams.precision(this);
    this.threadsPerWorker = CnnParams.threadsPerWorker(this);
    this.inferenceBatchSize = CnnParams.inferenceBatchSize(this);
    setDefault(inputCol, "features");
    setDefault(outputCol, "cnnFeatures");
    setDefault(device, "cpu");
    setDefault(precision, "fp32");
    setDefault(inferenceBatchSize, 256);
    if (layerName != null) {
      set(layer, layerName);
    }
  }

  /**
   * The featurizer of {@code model}'s layer {@code layerName} (one of
   * {@link ModelSpec#layerNames()}), or, when null, of the layer before the last dense layer.
   *
   * @throws IllegalArgumentException naming the layers there are, for a layer the network does not
   *     have, or a network with no layer before its last dense layer
   */
  static CnnFeaturizer of(CnnClassificationModel model, String layerName, float[] weights) {
    ModelSpec spec = ModelSpec.parse(model.getOrDefault(model.model()));
    List<String> names = spec.layerNames();
    int count;
    if (layerName == null) {
      int lastDense = spec.lastDenseLayer();
      if (lastDense < 1) {
        throw new IllegalArgumentException("model " + spec.name() + " has no layer before its last dense layer;"
            + " name one of its layers (" + String.join(", ", names) + ")");
      }
      count = lastDense;
    } else {
      count = names.indexOf(layerName) + 1;
      if (count == 0) {
        throw new IllegalArgumentException("layer '" + layerName + "' is not a layer of model " + spec.name()
            + "; its layers are " + String.join(", ", names));
      }
    }
    ModelSpec part = spec.upTo(count);
    float[] prefix = java.util.Arrays.copyOf(weights, Math.toIntExact(part.paramCount()));
    CnnClassificationModel network = new CnnClassificationModel(model.uid() + "_" + names.get(count - 1),
        part.specString(), prefix);
    CnnFeaturizer f = new CnnFeaturizer(org.apache.spark.ml.util.Identifiable.randomUID("cnnFeaturizer"), network,
        names.get(count - 1));
    f.set(f.inputCol, model.getOrDefault(model.featuresCol()));
    for (String p : List.of("device", "precision", "threadsPerWorker", "inferenceBatchSize")) {
      if (model.isSet(model.getParam(p))) {
        f.set(f.getParam(p), model.getOrDefault(model.getParam(p)));
      }
    }
    return f;
  }

  @Override
  public String uid() {
    return uid;
  }

  /** The column the network reads (default: the model's {@code featuresCol}). */
  public Param<String> inputCol() {
    return inputCol;
  }

  /** The column of the layer's output, a Vector (default {@code cnnFeatures}). */
  public Param<String> outputCol() {
    return outputCol;
  }

  /** The layer whose output this gives, by its name in the network ({@code dense1}, {@code pool2}, ...). */
  public Param<String> layer() {
    return layer;
  }

  /** As the model's {@code device}. */
  public Param<String> device() {
    return device;
  }

  /** As the model's {@code precision}. */
  public Param<String> precision() {
    return precision;
  }

  /** As the model's {@code threadsPerWorker}. */
  public IntParam threadsPerWorker() {
    return threadsPerWorker;
  }

  /** As the model's {@code inferenceBatchSize}. */
  public IntParam inferenceBatchSize() {
    return inferenceBatchSize;
  }

  /** Sets {@code inputCol}. */
  public CnnFeaturizer setInputCol(String v) {
    return (CnnFeaturizer) set(inputCol, v);
  }

  /** Sets {@code outputCol}. */
  public CnnFeaturizer setOutputCol(String v) {
    return (CnnFeaturizer) set(outputCol, v);
  }

  /** Sets {@code device}; a value the param rejects fails here, naming it. */
  public CnnFeaturizer setDevice(String v) {
    return (CnnFeaturizer) set(device, v);
  }

  /** Sets {@code precision}; a value the param rejects fails here, naming it. */
  public CnnFeaturizer setPrecision(String v) {
    return (CnnFeaturizer) set(precision, v);
  }

  /** Sets {@code threadsPerWorker}; a value the param rejects fails here, naming it. */
  public CnnFeaturizer setThreadsPerWorker(int v) {
    return (CnnFeaturizer) set(threadsPerWorker, v);
  }

  /** Sets {@code inferenceBatchSize}; a value the param rejects fails here, naming it. */
  public CnnFeaturizer setInferenceBatchSize(int v) {
    return (CnnFeaturizer) set(inferenceBatchSize, v);
  }

  /** The number of values the output column's vectors hold: the layer's output size. */
  public int numFeatures() {
    return network.numClasses();
  }

  /**
   * The layer's output for one row's features, outside a DataFrame, as the model's
   * {@code predictRaw} scores one row: on this JVM's engine, with this featurizer's {@code device},
   * {@code precision} and {@code threadsPerWorker}, kept between calls on a thread.
   *
   * @throws IllegalArgumentException when {@code features} does not hold the network's input size
   *                                  of finite values
   */
  public org.apache.spark.ml.linalg.Vector layerOutput(org.apache.spark.ml.linalg.Vector features) {
    float[] out = scorer().logits("layerOutput", features);
    return org.apache.spark.ml.linalg.Vectors.dense(CnnClassificationModel.toDouble(out, 0, out.length));
  }

  /** The network that scores: this one's columns and settings on the layer's network. */
  private CnnClassificationModel scorer() {
    CnnClassificationModel m = network.copy(ParamMap.empty()).setFeaturesCol($(inputCol)).setRawPredictionCol(
        $(outputCol)).setProbabilityCol("").setPredictionCol("");
    for (Param<?> p : List.of(device, precision, threadsPerWorker, inferenceBatchSize)) {
      if (isDefined(p)) {
        m.set(m.getParam(p.name()), getOrDefault(p));
      }
    }
    return m;
  }

  @Override
  public StructType transformSchema(StructType schema) {
    if (java.util.Arrays.asList(schema.fieldNames()).contains($(outputCol))) {
      throw new IllegalArgumentException("outputCol '" + $(outputCol) + "' exists already; name another column");
    }
    return scorer().transformSchema(schema);
  }

  @Override
  public Dataset<Row> transform(Dataset<?> dataset) {
    transformSchema(dataset.schema());
    return scorer().transform(dataset);
  }

  @Override
  public CnnFeaturizer copy(ParamMap extra) {
    return copyValues(new CnnFeaturizer(uid, network, null), extra);
  }

  @Override
  public String toString() {
    return "CnnFeaturizer: uid=" + uid + ", layer=" + getOrDefault(layer) + ", numFeatures=" + numFeatures();
  }

  @Override
  public MLWriter write() {
    return new Writer(this);
  }

  @Override
  public void save(String path) throws java.io.IOException {
    write().save(path);
  }

  /** The reader for {@link #load}. */
  public static MLReader<CnnFeaturizer> read() {
    return new Reader();
  }

  /** Loads a featurizer saved with {@code save(path)}. */
  public static CnnFeaturizer load(String path) {
    return read().load(path);
  }

  private static final String NETWORK = "network";

  private static final class Writer extends MLWriter {
    private final CnnFeaturizer instance;

    Writer(CnnFeaturizer instance) {
      this.instance = instance;
    }

    @Override
    public void saveImpl(String path) {
      SparkSession spark = sparkSession();
      DefaultParamsWriter.saveMetadata(instance, path, spark);
      try {
        instance.network.write().session(spark).save(new org.apache.hadoop.fs.Path(path, NETWORK).toString());
      } catch (java.io.IOException e) {
        throw new java.io.UncheckedIOException("could not write the network of " + path + ": " + e.getMessage(), e);
      }
    }
  }

  private static final class Reader extends MLReader<CnnFeaturizer> {
    @Override
    public CnnFeaturizer load(String path) {
      SparkSession spark = sparkSession();
      DefaultParamsReader.Metadata meta = DefaultParamsReader.loadMetadata(path, spark, CnnFeaturizer.class.getName());
      CnnClassificationModel network = CnnClassificationModel.read().session(spark)
          .load(new org.apache.hadoop.fs.Path(path, NETWORK).toString());
      CnnFeaturizer f = new CnnFeaturizer(meta.uid(), network, null);
      meta.getAndSetParams(f, Option.empty());
      return f;
    }
  }
}
