package dev.convspark.ml.training;

import dev.convspark.tensor.spec.ModelSpec;
import java.util.List;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.scheduler.BarrierJobUnsupportedRDDChainException;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;

/**
 * How a fit trains, once {@code CnnClassifier} has checked its params: the entry point of this
 * package, which holds the training machinery (packing the rows into {@link Block}s, sampling each
 * step's global batch, the barrier stage's workers, driver-synchronised steps, checkpoints,
 * validation). Internal to convspark: public only for {@code dev.convspark.ml}.
 */
public final class Training {

  private Training() {
  }

  /**
   * The classes of this package that Spark's serializer moves between tasks (shuffled and cached
   * blocks, driver mode's gradient sums), with the arrays inside them Kryo does not register by
   * itself: what {@code CnnKryoRegistrator} registers.
   */
  public static List<Class<?>> serializedClasses() {
    return List.of(Block.class, GradientSum.class, float[][].class);
  }

  /**
   * Trains on {@code rows} (features, label and, with validation, the indicator): in a barrier
   * stage of {@code workers} tasks when {@code barrier} (packing the partitions first and
   * shuffling them to the workers when {@code packFirst}: more partitions than workers), else
   * with one Spark job per step ({@code syncMode=driver}).
   */
  public static TrainResult run(Dataset<Row> rows, Settings settings, int workers, boolean barrier, boolean packFirst) {
    ModelSpec spec = ModelSpec.parse(settings.spec());
    FeatureReader reader = settings.reader();
    TrainResult r;
    if (packFirst) {
      // More partitions than workers: pack each partition (a compact float block, a quarter of the
      // rows' size) and shuffle the blocks, partition i to worker i % workers, each worker merging
      // its blocks in partition order. A shuffle, not a coalesce: a barrier stage may not hold a
      // partition-merging RDD, and a shuffle can be recomputed when an executor is lost.
      int size = spec.inputShape().size();
      LabelReader labels = settings.labels();
      IndicatorReader indicator = settings.indicator();
      WeightReader weights = settings.weights();
      int w = workers;
      org.apache.spark.api.java.JavaRDD<Block> blocks = internalRows(rows)
          .mapPartitionsWithIndex((i, it) -> List.of(new scala.Tuple2<>(i % w,
              new scala.Tuple2<>(i, Block.pack(it, reader, labels, size, indicator, weights)))).iterator(), false)
          .mapToPair(t -> t)
          .partitionBy(new org.apache.spark.HashPartitioner(w))
          .values()
          .mapPartitions(it -> {
            List<scala.Tuple2<Integer, Block>> parts = new java.util.ArrayList<>();
            it.forEachRemaining(parts::add);
            parts.sort(java.util.Comparator.comparing(scala.Tuple2::_1));
            return List.of(Block.merge(parts.stream().map(scala.Tuple2::_2).iterator())).iterator();
          });
      r = BarrierTraining.run(blocks.rdd(), settings);
    } else if (barrier) {
      try {
        r = BarrierTraining.run(rows.queryExecution().toRdd(), settings);
      } catch (Exception e) {
        // Scala throws this checked exception undeclared. The input's lineage ends in something a
        // barrier stage cannot hold (a limit, a coalesce): start the stage after a shuffle instead.
        if (!(e instanceof BarrierJobUnsupportedRDDChainException)) {
          throw e;
        }
        r = BarrierTraining.run(rows.repartition(workers).queryExecution().toRdd(), settings);
      }
    } else {
      r = DriverTraining.run(rows, settings);
    }
    return r;
  }

  /**
   * The rows of {@code rows} as Spark holds them, for packing without building row or vector
   * objects. Each row is read before the next is fetched (Spark may reuse the object).
   */
  static JavaRDD<org.apache.spark.sql.catalyst.InternalRow> internalRows(Dataset<Row> rows) {
    return rows.queryExecution().toRdd().toJavaRDD();
  }
}
