package dev.convspark.ml;

import java.util.ArrayList;
import java.util.List;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.ml.linalg.Matrix;
import org.apache.spark.mllib.evaluation.MulticlassMetrics;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.functions;
import scala.Tuple3;

/**
 * A fitted model's metrics on a labelled DataFrame, as MLlib's classification summaries give them
 * ({@link CnnClassificationModel#evaluate}): accuracy, the per-label and weighted precision,
 * recall, F-measure and true and false positive rates, and the confusion matrix. The labels are
 * those that occur in the label column, ascending, as in MLlib's {@code MulticlassMetrics}, which
 * computes every figure here from the counts of (label, prediction) pairs; the counts come from
 * one Spark job over the scored rows, which also checks the labels. With a weight column
 * ({@code weightCol} of the model), every figure but the counts is weighted, as MLlib's are: a row
 * counts its weight.
 */
public final class CnnClassificationSummary {

  private final Dataset<Row> predictions;
  private final String predictionCol;
  private final String labelCol;
  private final String weightCol;
  private final long[][] counts;
  private final MulticlassMetrics metrics;

  CnnClassificationSummary(Dataset<Row> predictions, String predictionCol, String labelCol, String weightCol,
                           int classes) {
    this.predictions = predictions;
    this.predictionCol = predictionCol;
    this.labelCol = labelCol;
    this.weightCol = weightCol;
    this.counts = new long[classes][classes];
    List<Tuple3<Object, Object, Object>> pairs = new ArrayList<>();
    double totalWeight = 0;
    org.apache.spark.sql.Column w = weightCol == null ? functions.lit(1.0) : functions.col(weightCol).cast("double");
    // Per pair: the rows, their weights' sum, and the weights that are not finite numbers >= 0.
    org.apache.spark.sql.Column bad = functions.when(w.isNull().or(functions.isnan(w)).or(w.lt(0))
        .or(w.equalTo(Double.POSITIVE_INFINITY)), 1).otherwise(0);
    for (Row r : predictions.groupBy(functions.col(labelCol).cast("double"), functions.col(predictionCol))
        .agg(functions.count(functions.lit(1)), functions.sum(w), functions.sum(bad), functions.first(
            functions.when(bad.equalTo(1), w.cast("string")), true)).collectAsList()) {
      if (r.getLong(4) > 0) {
        throw new IllegalArgumentException("weightCol '" + weightCol + "' holds " + (r.isNullAt(5) ? "a null" : r.get(5))
            + "; weights must be finite numbers, 0 or more");
      }
      if (r.isNullAt(0)) {
        throw new IllegalArgumentException("label column '" + labelCol + "' holds a null; labels must be 0-based class"
            + " indices in [0, " + classes + ")");
      }
      double label = r.getDouble(0);
      if (label != Math.rint(label) || label < 0 || label >= classes) {
        throw new IllegalArgumentException("label column '" + labelCol + "' holds " + label
            + "; labels must be 0-based class indices in [0, " + classes + ")");
      }
      double prediction = r.getDouble(1);
      counts[(int) label][(int) prediction] += r.getLong(2);
      pairs.add(new Tuple3<>(prediction, label, r.getDouble(3)));
      totalWeight += r.getDouble(3);
    }
    if (pairs.isEmpty()) {
      throw new IllegalArgumentException("cannot evaluate on an empty dataset");
    }
    if (!(totalWeight > 0)) {
      throw new IllegalArgumentException("weightCol '" + weightCol + "' gives every row a weight of 0; at least one"
          + " must weigh more than 0");
    }
    // (prediction, label, weight): the pairs' counts (or summed weights) as weights give MLlib's
    // metrics of every row.
    this.metrics = new MulticlassMetrics(JavaSparkContext.fromSparkContext(predictions.sparkSession().sparkContext())
        .parallelize(pairs, 1).rdd());
  }

  /** The scored DataFrame: the input with the model's output columns. */
  public Dataset<Row> predictions() {
    return predictions;
  }

  /** The column of the predictions evaluated. */
  public String predictionCol() {
    return predictionCol;
  }

  /** The column of the true labels. */
  public String labelCol() {
    return labelCol;
  }

  /** The column of the rows' weights, or null when every row weighed 1. */
  public String weightCol() {
    return weightCol;
  }

  /** The number of rows evaluated. */
  public long count() {
    long n = 0;
    for (long[] row : counts) {
      for (long c : row) {
        n += c;
      }
    }
    return n;
  }

  /**
   * Rows by true class (row) and predicted class (column), every class of the model, 0 to
   * {@code numClasses - 1}; {@link #confusionMatrix()} holds those of {@link #labels()} only.
   */
  public long[][] counts() {
    long[][] copy = new long[counts.length][];
    for (int i = 0; i < counts.length; i++) {
      copy[i] = counts[i].clone();
    }
    return copy;
  }

  /** The labels the per-label figures are for: those that occur in the label column, ascending. */
  public double[] labels() {
    return metrics.labels();
  }

  /** The confusion matrix over {@link #labels()}: rows are true labels, columns predicted ones. */
  public Matrix confusionMatrix() {
    return metrics.confusionMatrix().asML();
  }

  /** The fraction of rows predicted right. */
  public double accuracy() {
    return metrics.accuracy();
  }

  /** Precision of each of {@link #labels()}. */
  public double[] precisionByLabel() {
    return byLabel(metrics::precision);
  }

  /** Recall of each of {@link #labels()}. */
  public double[] recallByLabel() {
    return byLabel(metrics::recall);
  }

  /** F1 of each of {@link #labels()}. */
  public double[] fMeasureByLabel() {
    return byLabel(metrics::fMeasure);
  }

  /** F-beta of each of {@link #labels()}. */
  public double[] fMeasureByLabel(double beta) {
    return byLabel(l -> metrics.fMeasure(l, beta));
  }

  /** True positive rate (recall) of each of {@link #labels()}. */
  public double[] truePositiveRateByLabel() {
    return byLabel(metrics::truePositiveRate);
  }

  /** False positive rate of each of {@link #labels()}. */
  public double[] falsePositiveRateByLabel() {
    return byLabel(metrics::falsePositiveRate);
  }

  /** Precision averaged over the labels, weighted by how many rows hold each. */
  public double weightedPrecision() {
    return metrics.weightedPrecision();
  }

  /** Recall averaged over the labels, weighted by how many rows hold each. */
  public double weightedRecall() {
    return metrics.weightedRecall();
  }

  /** F1 averaged over the labels, weighted by how many rows hold each. */
  public double weightedFMeasure() {
    return metrics.weightedFMeasure();
  }

  /** F-beta averaged over the labels, weighted by how many rows hold each. */
  public double weightedFMeasure(double beta) {
    return metrics.weightedFMeasure(beta);
  }

  /** True positive rate averaged over the labels, weighted by how many rows hold each. */
  public double weightedTruePositiveRate() {
    return metrics.weightedTruePositiveRate();
  }

  /** False positive rate averaged over the labels, weighted by how many rows hold each. */
  public double weightedFalsePositiveRate() {
    return metrics.weightedFalsePositiveRate();
  }

  private double[] byLabel(java.util.function.DoubleUnaryOperator f) {
    double[] labels = metrics.labels();
    double[] out = new double[labels.length];
    for (int i = 0; i < labels.length; i++) {
      out[i] = f.applyAsDouble(labels[i]);
    }
    return out;
  }
}
