package dev.convspark.ml.training;

import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.io.ModelState;
import dev.convspark.tensor.optim.Optimizer;
import dev.convspark.tensor.spec.ModelSpec;
import dev.convspark.tensor.train.Trainer;
import java.util.List;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.storage.StorageLevel;

/**
 * {@code syncMode=driver}: one Spark job per step, the weights broadcast and the gradients
 * tree-aggregated, the update applied on the driver; for clusters where barrier stages cannot run.
 * Each partition draws its share of the step's global batch as a barrier worker would
 * ({@link Sampling}), so both modes train the same.
 */
final class DriverTraining {

  private DriverTraining() {
  }

  /** Trains with one Spark job per step. */
  static TrainResult run(Dataset<Row> rows, Settings s) {
    ModelSpec spec = ModelSpec.parse(s.spec());
    String specText = s.spec();
    int size = spec.inputShape().size();
    FeatureReader reader = s.reader();
    LabelReader labels = s.labels();
    IndicatorReader indicator = s.indicator();
    WeightReader weights = s.weights();
    JavaSparkContext jsc = JavaSparkContext.fromSparkContext(rows.sparkSession().sparkContext());
    // Pack and validate every partition before the first step: a bad label fails here.
    JavaRDD<Block> blocks = Training.internalRows(rows)
        .mapPartitions(it -> List.of(Block.pack(it, reader, labels, size, indicator, weights)).iterator())
        .persist(StorageLevel.MEMORY_AND_DISK());
    try {
      List<String> statuses = blocks.map(Block::status).collect();
      List<Integer> sizes = statuses.stream().map(Block::statusCount).toList();
      long total = sizes.stream().mapToLong(Integer::longValue).sum();
      if (total == 0) {
        throw new IllegalArgumentException("cannot fit on an empty dataset");
      }
      double weightScale = Sampling.weightScale(weights, total,
          statuses.stream().mapToDouble(Block::statusWeight).sum());
      int[] shares = Sampling.shares(sizes, total, s.batchSize());
      int[] firsts = Sampling.firstSamples(shares);
      int threads = s.threads();
      String deviceText = s.device();
      String precisionText = s.precision();
      float keep = s.keepProb();
      Shift shift = s.shift();
      int start = s.checkpoints() == null ? 0 : s.checkpoints().latest();
      Start from = Start.of(s, spec, start);
      float[] params = from.params();
      Optimizer opt = from.optimizer();
      double[] loss = from.loss();
      double[] accuracy = from.accuracy();
      Validation validation = from.validation();
      int last = start;
      long t0 = System.nanoTime();
      for (int step = start + 1; step <= s.steps() && (validation == null || !validation.stopped()); step++) {
        Broadcast<float[]> w = jsc.broadcast(params);
        long stepSeed = Trainer.stepSeed(s.seed(), step);
        GradientSum g = blocks.mapPartitionsWithIndex((index, it) -> {
          int share = shares[index];
          Block b = it.hasNext() ? it.next() : null;
          if (b == null || share == 0) {
            return List.of(new GradientSum(null, 0, 0, 0)).iterator();
          }
          ModelRunner runner = EngineCache.runner(specText, threads, deviceText, precisionText);
          runner.copyParametersFrom(w.value());
          runner.setKeepProb(keep);
          return List.of(Sampling.partitionGradient(b, share, index, firsts[index], stepSeed, runner, shift,
              weightScale))
              .iterator();
        }, false).treeReduce(GradientSum::add, 2);
        w.destroy();
        if (!Double.isFinite(g.lossSum)) {
          throw new ArithmeticException("loss became " + g.lossSum + " at step " + step
              + "; the model diverged (try a lower learningRate, or check the features for huge values)");
        }
        float inv = 1f / g.count;
        for (int i = 0; i < g.grads.length; i++) {
          g.grads[i] *= inv;
        }
        opt.step(params, g.grads);
        loss[step - 1] = g.lossSum / g.count;
        accuracy[step - 1] = (double) g.correct / g.count;
        last = step;
        if (validation != null && validation.plan().due(step, s.steps())) {
          Broadcast<float[]> now = jsc.broadcast(params);
          List<String> parts = blocks.map(b -> {
            ModelRunner runner = EngineCache.runner(specText, threads, deviceText, precisionText);
            runner.copyParametersFrom(now.value());
            return Validation.encode(Validation.evaluate(runner, new Block[] {b}));
          }).collect();
          now.destroy();
          validation.record(step, Validation.sum(parts.toArray(new String[0])), params::clone);
          ProgressReports.validated(step, validation);
        }
        boolean stopping = validation != null && validation.stopped();
        ProgressReports.report(step, s.steps(), start, loss[step - 1], accuracy[step - 1], g.count, t0, validation);
        if (s.checkpoints() != null && (step % s.checkpointInterval() == 0 || step == s.steps() || stopping)) {
          s.checkpoints().save(step, new ModelState(spec, params.clone(), opt.state()), loss, accuracy,
              validation == null ? null : validation.history(), validation == null ? null : validation.bestOlderThan(step));
        }
      }
      return new TrainResult(validation == null ? params.clone() : validation.modelWeights(params::clone),
          java.util.Arrays.copyOf(loss, last),
          java.util.Arrays.copyOf(accuracy, last), validation == null ? null : validation.history(), start,
          (System.nanoTime() - t0) / 1e9, Double.NaN);
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e.getMessage(), e);
    } finally {
      blocks.unpersist(false);
    }
  }
}
