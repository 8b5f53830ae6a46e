package dev.convspark.ml;

import dev.convspark.tensor.Network;
import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.io.ModelState;
import dev.convspark.tensor.optim.Optimizer;
import dev.convspark.tensor.spec.ModelSpec;
import dev.convspark.tensor.train.Trainer;
import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import org.apache.spark.BarrierTaskContext;
import org.apache.spark.rdd.RDD;
import org.apache.spark.sql.Row;
import scala.collection.Iterator;
import scala.jdk.javaapi.CollectionConverters;
import scala.reflect.ClassTag$;
import scala.runtime.AbstractFunction1;

/**
 * {@code syncMode=barrier}: one long-lived task per worker in a Spark barrier stage. The workers
 * pack their partition, tell each other their sizes and rank 0's address through
 * {@link BarrierTaskContext#allGather}, then run every step without Spark: sample the worker's
 * share of the global batch, compute the gradient, sum it with {@link StarAllreduce}, apply the
 * same optimizer update. All replicas start from the same seed and see the same sums, so they
 * stay identical; rank 0 returns the weights.
 */
final class BarrierTraining {

  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(BarrierTraining.class);

  /** How long a worker waits for the others (connection or one step's exchange). */
  static final int TIMEOUT_MS = 300_000;

  /** The port rank 0 listened on last in this JVM: lets tests play a stranger connecting to it. */
  static volatile int lastHubPort;

  private BarrierTraining() {
  }

  /** The settings every worker needs, shipped with the task. */
  record Settings(String spec, FeatureReader reader, String labelCol, String optimizer, float learningRate,
                  int batchSize, int steps, float keepProb, long seed, int threads, Checkpoints checkpoints,
                  int checkpointInterval, String device, TrainingProgress.Remote progress) implements Serializable {
  }

  /**
   * Test hook: the local property {@value} set to {@code rank:step} makes that worker throw
   * at that step in the first attempt of the barrier stage (Spark then retries the stage);
   * {@code rank:step:halt} kills the worker's whole JVM instead (for executors in their own process).
   */
  static final String FAIL_AT_STEP = "convspark.test.failAtStep";

  /** Trains on an RDD of rows (each worker packs its partition) or of {@link Block}s packed already. */
  /**
   * Where training starts in both sync modes: the weights, optimizer and history of checkpoint
   * {@code step}, or at step 0 the seeded initial weights, a fresh optimizer and empty histories
   * (each {@code s.steps()} long).
   */
  record Start(float[] params, Optimizer optimizer, double[] loss, double[] accuracy) {

    static Start of(Settings s, ModelSpec spec, int step) throws IOException {
      double[] loss = new double[s.steps()];
      double[] accuracy = new double[s.steps()];
      if (step == 0) {
        Network init = new Network(spec);
        init.initialize(s.seed());
        return new Start(init.params(), Optimizer.create(s.optimizer(), s.learningRate(), init.paramCount()), loss,
            accuracy);
      }
      Checkpoints.Checkpoint c = s.checkpoints().load(step, spec, s.optimizer());
      System.arraycopy(c.loss(), 0, loss, 0, step);
      System.arraycopy(c.accuracy(), 0, accuracy, 0, step);
      float[] params = c.state().params();
      return new Start(params, Optimizer.restore(c.state().optimizer(), params.length), loss, accuracy);
    }
  }

  static TrainResult run(RDD<?> rows, Settings s) {
    // The barrier stage writes its result to a shuffle read by a one-task stage: Spark retries a
    // failed barrier stage only when it is a shuffle-map stage (a failed barrier result stage
    // aborts the job), and a retried stage resumes from the newest checkpoint.
    @SuppressWarnings("unchecked")
    RDD<Object> input = (RDD<Object>) rows;
    Object[] results = (Object[]) input.barrier().mapPartitions(new Worker(s), false,
        ClassTag$.MODULE$.apply(TrainResult.class)).repartition(1, null).collect();
    if (results.length != 1) {
      throw new IllegalStateException("barrier training returned " + results.length + " results (expected 1 from worker 0)");
    }
    TrainResult r = (TrainResult) results[0];
    if (r.failure() != null) {
      throw r.failure();
    }
    return r;
  }

  private static final class Worker extends AbstractFunction1<Iterator<Object>, Iterator<TrainResult>>
      implements Serializable {
    private static final long serialVersionUID = 1L;
    private final Settings s;

    Worker(Settings s) {
      this.s = s;
    }

    @Override
    public Iterator<TrainResult> apply(Iterator<Object> rows) {
      try {
        TrainResult r;
        try {
          r = train(CollectionConverters.asJava(rows));
        } catch (Deterministic e) {
          // Every worker saw it (or heard of it through allGather): retrying the stage cannot help.
          r = BarrierTaskContext.get().partitionId() == 0 ? TrainResult.failed(e.failure) : null;
        }
        return CollectionConverters.asScala(r == null ? List.<TrainResult>of().iterator() : List.of(r).iterator());
      } catch (IOException e) {
        throw new UncheckedIOException(e.getMessage(), e);
      }
    }

    private TrainResult train(java.util.Iterator<Object> rows) throws IOException {
      BarrierTaskContext ctx = BarrierTaskContext.get();
      int rank = ctx.partitionId();
      int size = ctx.getTaskInfos().length;
      ModelSpec spec = ModelSpec.parse(s.spec());
      Block block = null;
      ModelRunner runner = null;
      String mine;
      try {
        block = Block.of(rows, s.reader(), s.labelCol(), spec.inputShape().size(), spec.numClasses());
        // The engine before the rendezvous too: a device that cannot be used stops every worker at once.
        runner = EngineCache.runner(s.spec(), s.threads(), s.device());
        mine = Integer.toString(block.count);
      } catch (IllegalArgumentException | IllegalStateException e) {
        // Told to every worker through allGather, so that all stop at once and Spark does not retry.
        mine = "!" + e.getMessage();
      }
      String address = ctx.getTaskInfos()[rank].address();
      String host = address.substring(0, address.lastIndexOf(':'));
      ServerSocket server = null;
      if (rank == 0 && block != null) {
        // Rank 0 decides where every worker starts: the newest checkpoint when there is one
        // (a retried stage resumes from it), else step 0.
        int resume = s.checkpoints() == null ? 0 : s.checkpoints().latest();
        server = StarAllreduce.listen(host);
        lastHubPort = server.getLocalPort();
        byte[] token = new byte[24];
        new SecureRandom().nextBytes(token);
        mine = block.count + " " + host + " " + server.getLocalPort() + " " + HexFormat.of().formatHex(token) + " " + resume;
      }
      String[] all;
      try {
        all = ctx.allGather(mine);
      } catch (RuntimeException e) {
        if (server != null) {
          server.close();
        }
        throw e;
      }
      List<Integer> sizes = new ArrayList<>();
      for (String m : all) {
        if (m.startsWith("!")) {
          if (server != null) {
            server.close();
          }
          throw new Deterministic(new IllegalArgumentException(m.substring(1)));
        }
        sizes.add(Integer.parseInt(m.split(" ")[0]));
      }
      long total = sizes.stream().mapToLong(Integer::longValue).sum();
      if (total == 0) {
        if (server != null) {
          server.close();
        }
        throw new Deterministic(new IllegalArgumentException("cannot fit on an empty dataset"));
      }
      int[] shares = CnnClassifier.shares(sizes, total, s.batchSize());
      String[] hub = all[0].split(" ");
      StarAllreduce exchange;
      try {
        exchange = rank == 0 ? StarAllreduce.hub(server, size, hub[3], TIMEOUT_MS)
            : StarAllreduce.spoke(rank, size, hub[1], Integer.parseInt(hub[2]), hub[3], TIMEOUT_MS);
      } finally {
        if (server != null) {
          server.close();
        }
      }
      try (exchange) {
        return steps(ctx, rank, block, shares[rank], exchange, Integer.parseInt(hub[4]), runner);
      }
    }

    private TrainResult steps(BarrierTaskContext ctx, int rank, Block block, int share, StarAllreduce exchange,
                              int start, ModelRunner runner) throws IOException {
      ModelSpec spec = ModelSpec.parse(s.spec());
      runner.setKeepProb(s.keepProb());
      Start from = Start.of(s, spec, start);
      runner.copyParametersFrom(from.params());
      Optimizer opt = from.optimizer();
      double[] loss = from.loss();
      double[] accuracy = from.accuracy();
      if (start > 0 && rank == 0) {
        LOG.info("resuming at step {} from the checkpoint in {}", start, s.checkpoints().dir());
      }
      int[] failAt = failAt(ctx);
      float[] grads = new float[runner.paramCount()];
      double[] stats = new double[3];
      long t0 = System.nanoTime();
      for (int step = start + 1; step <= s.steps(); step++) {
        if (failAt != null && failAt[0] == rank && failAt[1] == step) {
          if (failAt[2] == 1) {
            LOG.error("{}: halting this executor's JVM at step {} (worker {})", FAIL_AT_STEP, step, rank);
            Runtime.getRuntime().halt(137);
          }
          throw new IllegalStateException("injected failure of worker " + rank + " at step " + step
              + " (" + FAIL_AT_STEP + ", first attempt only)");
        }
        long stepSeed = Trainer.stepSeed(s.seed(), step);
        GradientSum g;
        if (share == 0) {
          g = new GradientSum(null, 0, 0, 0);
          java.util.Arrays.fill(grads, 0f);
        } else {
          g = CnnClassifier.partitionGradient(block, share, rank, stepSeed, runner, grads);
        }
        stats[0] = g.lossSum;
        stats[1] = g.correct;
        stats[2] = g.count;
        exchange.allreduce(grads, stats);
        if (!Double.isFinite(stats[0])) {
          // Every replica sees the same sum, so all stop here together.
          throw new Deterministic(new ArithmeticException("loss became " + stats[0] + " at step " + step
              + "; the model diverged (try a lower learningRate, or check the features for huge values)"));
        }
        float inv = (float) (1 / stats[2]);
        for (int i = 0; i < grads.length; i++) {
          grads[i] *= inv;
        }
        runner.copyGradientsFrom(grads);
        runner.applyGradients(opt);
        loss[step - 1] = stats[0] / stats[2];
        accuracy[step - 1] = stats[1] / stats[2];
        if (s.checkpoints() != null && (step % s.checkpointInterval() == 0 || step == s.steps())) {
          float[] w = new float[runner.paramCount()];
          runner.copyParametersTo(w);
          runner.syncOptimizer(opt);
          ModelState state = new ModelState(spec, w, opt.state());
          try {
            // Every replica holds the same weights, so every one checks them and all stop together.
            Checkpoints.checkFinite(state, step);
          } catch (ArithmeticException e) {
            throw new Deterministic(e);
          }
          if (rank == 0) {
            s.checkpoints().save(step, state, loss, accuracy);
          }
        }
        if (rank == 0) {
          TrainingProgress.report(step, s.steps(), start, loss[step - 1], accuracy[step - 1], stats[2], t0);
          if (s.progress() != null) {
            s.progress().publish(step, loss[step - 1], accuracy[step - 1]);
          }
        }
      }
      if (rank != 0) {
        return null;
      }
      float[] weights = new float[runner.paramCount()];
      runner.copyParametersTo(weights);
      return new TrainResult(weights, loss, accuracy, start);
    }

    /** A failure every worker meets at the same point, so retrying cannot help. */
    private static final class Deterministic extends RuntimeException {
      private static final long serialVersionUID = 1L;
      private final RuntimeException failure;

      Deterministic(RuntimeException failure) {
        super(failure.getMessage(), failure);
        this.failure = failure;
      }
    }

    private static int[] failAt(BarrierTaskContext ctx) {
      String v = ctx.getLocalProperty(FAIL_AT_STEP);
      if (v == null || ctx.stageAttemptNumber() > 0) {
        return null;
      }
      String[] p = v.split(":");
      return new int[] {Integer.parseInt(p[0]), Integer.parseInt(p[1]), p.length > 2 && p[2].equals("halt") ? 1 : 0};
    }
  }
}
