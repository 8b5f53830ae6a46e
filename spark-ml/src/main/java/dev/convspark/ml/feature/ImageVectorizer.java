package dev.convspark.ml.feature;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.apache.spark.ml.Transformer;
import org.apache.spark.ml.attribute.AttributeGroup;
import org.apache.spark.ml.linalg.SQLDataTypes;
import org.apache.spark.ml.linalg.Vectors;
import org.apache.spark.ml.param.BooleanParam;
import org.apache.spark.ml.param.IntParam;
import org.apache.spark.ml.param.Param;
import org.apache.spark.ml.param.ParamMap;
import org.apache.spark.ml.param.ParamValidators;
import org.apache.spark.ml.util.DefaultParamsReader;
import org.apache.spark.ml.util.DefaultParamsWritable;
import org.apache.spark.ml.util.Identifiable;
import org.apache.spark.ml.util.MLReader;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.api.java.UDF2;
import org.apache.spark.sql.expressions.UserDefinedFunction;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

/**
 * Turns images into a model's input vector, as a Spark ML {@link Transformer}: the input column
 * holds Spark's image struct ({@code spark.read().format("image")}, or the {@code idx} source's
 * {@code image}) or encoded image files ({@code binaryFile}'s {@code content}: PNG, JPEG, GIF or
 * BMP bytes); the output column ({@code features} by default) a vector of {@code height x width x
 * numChannels} values in [0, 1], as {@link ImagePixels} describes (gray or blue, green, red; with
 * {@code resize}, images of another size scaled to it). It goes before a
 * {@link dev.convspark.ml.CnnClassifier} in a Pipeline, so that the fitted PipelineModel scores
 * image files as they come:
 *
 * <pre>{@code
 * new Pipeline().setStages(new PipelineStage[] {
 *     new ImageVectorizer().setInputCol("content").setHeight(28).setWidth(28).setResize(true),
 *     new CnnClassifier()})
 * }</pre>
 *
 * <p>An image that cannot be read (not decodable, of another size without {@code resize}, null)
 * fails the job naming it: by its struct's {@code origin}, or for file bytes by the DataFrame's
 * {@code path} column where it has one (as {@code binaryFile}'s rows do). With
 * {@code handleInvalid=skip} such rows are dropped instead, as MLlib's transformers drop them.
 */
public final class ImageVectorizer extends Transformer implements DefaultParamsWritable {
  private static final long serialVersionUID = 1L;

  private final String uid;
  private final Param<String> inputCol;
  private final Param<String> outputCol;
  private final IntParam height;
  private final IntParam width;
  private final IntParam numChannels;
  private final BooleanParam resize;
  private final Param<String> handleInvalid;

  /** A vectorizer with a random uid. */
  public ImageVectorizer() {
    this(Identifiable.randomUID("imageVectorizer"));
  }

  /** A vectorizer with the given uid. */
  public ImageVectorizer(String uid) {
    this.uid = uid;
    this.inputCol = new Param<>(this, "inputCol", "input column name: Spark's image struct or binary encoded image"
        + " files (PNG, JPEG, GIF or BMP)");
    this.outputCol = new Param<>(this, "outputCol", "output column name: a vector of height x width x numChannels"
        + " values in [0, 1]");
    this.height = new IntParam(this, "height", "the model's input height in pixels (> 0)", ParamValidators.gt(0));
    this.width = new IntParam(this, "width", "the model's input width in pixels (> 0)", ParamValidators.gt(0));
    this.numChannels = new IntParam(this, "numChannels", "the model's input channels: 1 (gray; colour images as luma)"
        + " or 3 (blue, green, red, the order of Spark's image struct)", ParamValidators.inArray(new int[] {1, 3}));
    this.resize = new BooleanParam(this, "resize", "whether images of another size are scaled to height x width"
        + " (area mean where they shrink, bilinear where they grow; the aspect ratio is not kept) or refused");
    this.handleInvalid = new Param<>(this, "handleInvalid", "how to handle an image that cannot be read (not"
        + " decodable, of another size without resize, null): error (fail naming it) or skip (drop its row)",
        ParamValidators.inArray(List.of("error", "skip")));
    setDefault(outputCol, "features");
    setDefault(numChannels, 1);
    setDefault(resize, false);
    setDefault(handleInvalid, "error");
  }

  @Override
  public String uid() {
    return uid;
  }

  /** The {@code inputCol} param (no default). */
  public Param<String> inputCol() {
    return inputCol;
  }

  /** Sets {@code inputCol}. */
  public ImageVectorizer setInputCol(String v) {
    return (ImageVectorizer) set(inputCol, v);
  }

  /** The {@code outputCol} param (default {@code features}). */
  public Param<String> outputCol() {
    return outputCol;
  }

  /** Sets {@code outputCol}. */
  public ImageVectorizer setOutputCol(String v) {
    return (ImageVectorizer) set(outputCol, v);
  }

  /** The {@code height} param (no default). */
  public IntParam height() {
    return height;
  }

  /** Sets {@code height}; a value the param rejects fails here, naming it. */
  public ImageVectorizer setHeight(int v) {
    return (ImageVectorizer) set(height, v);
  }

  /** The {@code width} param (no default). */
  public IntParam width() {
    return width;
  }

  /** Sets {@code width}; a value the param rejects fails here, naming it. */
  public ImageVectorizer setWidth(int v) {
    return (ImageVectorizer) set(width, v);
  }

  /** The {@code numChannels} param (default 1). */
  public IntParam numChannels() {
    return numChannels;
  }

  /** Sets {@code numChannels} (1 or 3); a value the param rejects fails here, naming it. */
  public ImageVectorizer setNumChannels(int v) {
    return (ImageVectorizer) set(numChannels, v);
  }

  /** The {@code resize} param (default false). */
  public BooleanParam resize() {
    return resize;
  }

  /** Sets {@code resize}. */
  public ImageVectorizer setResize(boolean v) {
    return (ImageVectorizer) set(resize, v);
  }

  /** The {@code handleInvalid} param (default {@code error}). */
  public Param<String> handleInvalid() {
    return handleInvalid;
  }

  /** Sets {@code handleInvalid} ({@code error} or {@code skip}); a value the param rejects fails here, naming it. */
  public ImageVectorizer setHandleInvalid(String v) {
    return (ImageVectorizer) set(handleInvalid, v);
  }

  /** Whether the input column holds Spark's image struct (else encoded files); fails naming it when neither. */
  private boolean structInput(StructType schema) {
    for (Param<?> p : List.<Param<?>>of(inputCol, height, width)) {
      if (!isDefined(p)) {
        throw new IllegalArgumentException(uid + ": param " + p.name() + " is not set; " + p.doc());
      }
    }
    String in = $(inputCol);
    if (!Arrays.asList(schema.fieldNames()).contains(in)) {
      throw new IllegalArgumentException("input column '" + in + "' does not exist; columns are "
          + String.join(", ", schema.fieldNames()));
    }
    DataType t = schema.apply(in).dataType();
    if (t instanceof StructType s && Arrays.asList(s.fieldNames()).containsAll(
        List.of("origin", "height", "width", "nChannels", "data"))) {
      return true;
    }
    if (t.equals(DataTypes.BinaryType)) {
      return false;
    }
    throw new IllegalArgumentException("input column '" + in + "' has type " + t.simpleString()
        + "; expected Spark's image struct or binary encoded image files");
  }

  @Override
  public StructType transformSchema(StructType schema) {
    structInput(schema);
    if (Arrays.asList(schema.fieldNames()).contains($(outputCol))) {
      throw new IllegalArgumentException("output column '" + $(outputCol) + "' already exists");
    }
    List<StructField> fields = new ArrayList<>(List.of(schema.fields()));
    fields.add(new AttributeGroup($(outputCol), pixels().size()).toStructField());
    return new StructType(fields.toArray(new StructField[0]));
  }

  private ImagePixels pixels() {
    return new ImagePixels((Integer) $(height), (Integer) $(width), (Integer) $(numChannels), (Boolean) $(resize),
        "set the param resize");
  }

  @Override
  public Dataset<Row> transform(Dataset<?> dataset) {
    StructType out = transformSchema(dataset.schema());
    boolean struct = structInput(dataset.schema());
    ImagePixels px = pixels();
    String in = $(inputCol);
    boolean skip = $(handleInvalid).equals("skip");
    List<String> names = Arrays.asList(dataset.columns());
    Column origin = struct ? functions.col(in + ".origin")
        : names.contains("path") && !in.equals("path") ? functions.col("path").cast(DataTypes.StringType)
        : functions.lit(null).cast(DataTypes.StringType);
    // One decode a row: the values and the reason together, taken apart by the projections after.
    StructType result = new StructType().add("values", SQLDataTypes.VectorType()).add("problem", DataTypes.StringType);
    UDF2<Object, String, Row> decode = (value, where) -> {
      ImagePixels.Decoded d = struct ? px.fromStruct((Row) value)
          : px.fromFile((byte[]) value, where == null ? "an image of column '" + in + "'"
              : "image " + where + " (column '" + in + "')");
      if (d.problem() != null && !skip) {
        throw new IllegalArgumentException(d.problem());
      }
      return RowFactory.create(d.problem() == null ? Vectors.dense(d.pixels()) : null, d.problem());
    };
    UserDefinedFunction udf = functions.udf(decode, result);
    String tmp = "__" + uid;
    Dataset<Row> decoded = dataset.toDF().withColumn(tmp, udf.apply(functions.col(in), origin));
    if (skip) {
      decoded = decoded.filter(functions.col(tmp + ".problem").isNull());
    }
    List<Column> cols = new ArrayList<>();
    for (String c : dataset.columns()) {
      cols.add(functions.col(c));
    }
    StructField field = out.apply($(outputCol));
    cols.add(functions.col(tmp + ".values").as($(outputCol), field.metadata()));
    return decoded.select(cols.toArray(new Column[0]));
  }

  @Override
  public ImageVectorizer copy(ParamMap extra) {
    return defaultCopy(extra);
  }

  /** A reader for {@link #load}. */
  public static MLReader<ImageVectorizer> read() {
    return new DefaultParamsReader<>();
  }

  /** Loads a vectorizer saved with {@code save(path)}. */
  public static ImageVectorizer load(String path) {
    return read().load(path);
  }
}
