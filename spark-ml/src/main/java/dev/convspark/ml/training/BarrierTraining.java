package dev.convspark.ml.training;

import dev.convspark.ml.exchange.Encryption;
import dev.convspark.ml.exchange.GradientExchange;
import dev.convspark.ml.exchange.LocalExchange;
import dev.convspark.ml.exchange.RingAllreduce;
import dev.convspark.ml.exchange.StarAllreduce;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.spark.BarrierTaskContext;
import org.apache.spark.rdd.RDD;
import scala.reflect.ClassTag$;

/**
 * {@code syncMode=barrier}: one long-lived task per worker in a Spark barrier stage. The workers
 * find each other through {@link BarrierTaskContext#allGather} while they pack their partitions,
 * tell each other their sizes, then run every step without Spark: sample each worker's share of
 * the global batch, compute the gradient, sum it with a {@link GradientExchange}, apply the same
 * optimizer update. All replicas start from the same seed and see the same sums, so they stay
 * identical; rank 0 returns the weights.
 *
 * <p>The workers that are tasks of one JVM on one device form a unit, trained as one: the unit's
 * first worker draws every member's share from that member's partition, runs them as one batch on
 * an engine with the threads of all of them, and the others wait for it. Same samples, same
 * dropout masks, the same sum up to the order of its additions; but the weights are read once per
 * step and unit instead of once per worker, and only the units exchange gradients (over sockets;
 * a run that is one unit exchanges nothing). Workers of one JVM on different devices are units of
 * their own and sum through memory.
 */
public final class BarrierTraining {

  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(BarrierTraining.class);

  /** How long a worker waits for the others in one step's exchange. */
  static final int TIMEOUT_MS = 300_000;

  /** How long a worker waits for the others to pack their partitions and connect. */
  static final int START_TIMEOUT_MS = 3_600_000;

  /** The port rank 0 listened on last in this JVM: lets tests play a stranger connecting to it. */
  public static volatile int lastHubPort;

  private BarrierTraining() {
  }

  /**
   * Whether the units' gradient and parameter traffic is encrypted ({@link Encryption}): as Spark's
   * own traffic is, when {@code spark.network.crypto.enabled} or {@code spark.ssl.enabled} is set.
   * With {@code spark.authenticate} alone the exchange authenticates its connections (the run's
   * secret in the handshake, as always) and sends in the clear.
   */
  public static boolean encrypts(org.apache.spark.SparkConf conf) {
    return conf.getBoolean("spark.network.crypto.enabled", false) || conf.getBoolean("spark.ssl.enabled", false);
  }

  /**
   * Test hook: the local property {@value} set to {@code rank:step} makes that worker throw
   * at that step in the first attempt of the barrier stage (Spark then retries the stage);
   * {@code rank:step:halt} kills the worker's whole JVM instead (for executors in their own process).
   */
  public static final String FAIL_AT_STEP = "convspark.test.failAtStep";

  /**
   * The local property {@value} set to {@code socket} makes workers that share a JVM exchange
   * gradients over sockets all the same, each a unit of its own, as workers in separate executors
   * do (for tests and diagnosis); {@code star} does the same through the star exchange of before
   * the ring ({@link StarAllreduce}) instead of {@link RingAllreduce}; {@code stream} keeps the
   * ring's floats in its sockets even between executors on one host, where they would take shared
   * memory ({@code MappedLane}).
   */
  public static final String EXCHANGE = "convspark.exchange";

  /**
   * Results that worker 0 hands to a driver in its own JVM (local mode), by the run's key: the
   * weights then skip the shuffle and the task result (two serialisations of 13 MB and a
   * compressed shuffle file, about 0.2 s a fit).
   */
  static final ConcurrentHashMap<String, TrainResult> HANDED_OVER = new ConcurrentHashMap<>();

  /**
   * Trains on an RDD of Spark's internal rows (each worker packs its partition) or of
   * {@link Block}s packed already.
   */
  static TrainResult run(RDD<?> rows, Settings s) {
    // The barrier stage writes its result to a shuffle read by a one-task stage: Spark retries a
    // failed barrier stage only when it is a shuffle-map stage (a failed barrier result stage
    // aborts the job), and a retried stage resumes from the newest checkpoint.
    @SuppressWarnings("unchecked")
    RDD<Object> input = (RDD<Object>) rows;
    String key = LocalExchange.JVM_ID + " " + UUID.randomUUID();
    TrainResult r;
    try {
      Object[] results = (Object[]) input.barrier().mapPartitions(new BarrierWorker(s, key), false,
          ClassTag$.MODULE$.apply(byte[].class)).repartition(1, null).collect();
      if (results.length != 1) {
        throw new IllegalStateException("barrier training returned " + results.length + " results (expected 1 from worker 0)");
      }
      TrainResult here = HANDED_OVER.get(key);
      r = here != null ? here : TrainResult.fromBytes((byte[]) results[0]);
    } finally {
      HANDED_OVER.remove(key);
    }
    if (r.failure() == null && r.weights() == null) {
      throw new IllegalStateException("worker 0 handed its result over in this JVM, but it is not here");
    }
    if (r.failure() != null) {
      throw r.failure();
    }
    return r;
  }
}
