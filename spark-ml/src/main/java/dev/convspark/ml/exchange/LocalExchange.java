package dev.convspark.ml.exchange;

import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.optim.Optimizer;
import java.io.IOException;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.BooleanSupplier;

/**
 * What workers that run as tasks of one JVM (Spark's local mode, or an executor that runs every
 * worker of the run) share in memory: their start-up messages and packed partitions, and, where
 * they train on different devices (each task its own GPU), their gradients: each worker sums its
 * own slice of the parameters over all of them, in rank order, into a shared buffer. No bytes are
 * encoded and no socket is crossed. The sums are the same, bit for bit, as {@link StarAllreduce}'s.
 * (Workers on one device do not sum at all: worker 0 trains the whole global batch, see
 * {@code BarrierTraining}.)
 *
 * <p>Workers find their group by the run's secret (made by rank 0 for each stage attempt and
 * shared through Spark's {@code allGather}). A worker that leaves early (its task failed) or does
 * not arrive within the timeout makes the others fail with a message naming it, never wait forever;
 * so does a task Spark has killed.
 */
public final class LocalExchange implements GradientExchange {

  /** This JVM, as the workers tell each other in Spark's {@code allGather}. */
  public static final String JVM_ID = UUID.randomUUID().toString();

  private static final ConcurrentHashMap<String, Group> GROUPS = new ConcurrentHashMap<>();

  private final Group group;
  private final int rank;
  private final int timeoutMs;
  private final BooleanSupplier killed;
  private final OffHeapStep offHeap = new OffHeapStep();
  private boolean offHeapAgreed;

  private LocalExchange(Group group, int rank, int timeoutMs, BooleanSupplier killed) {
    this.group = group;
    this.rank = rank;
    this.timeoutMs = timeoutMs;
    this.killed = killed;
  }

  /**
   * Joins the group of run {@code secret}, creating it for the first worker to arrive.
   *
   * @param killed true once this worker's task has been killed (it then stops waiting)
   */
  public static LocalExchange join(String secret, int rank, int size, int timeoutMs, BooleanSupplier killed) {
    Group g = GROUPS.computeIfAbsent(secret, k -> new Group(k, size));
    if (g.size != size || rank < 0 || rank >= size) {
      throw new IllegalStateException("worker " + rank + " of " + size + " cannot join a group of " + g.size);
    }
    return new LocalExchange(g, rank, timeoutMs, killed);
  }

  @Override
  public String[] gather(String mine, int waitMs) throws IOException {
    Object[] all = share(mine, waitMs);
    return java.util.Arrays.copyOf(all, all.length, String[].class);
  }

  /**
   * Every worker's {@code mine}, in rank order, shared by reference (a worker's packed partition
   * is not copied), waiting up to {@code waitMs} for the others.
   */
  public Object[] share(Object mine, int waitMs) throws IOException {
    group.shared[rank] = mine;
    group.await(rank, waitMs, killed);
    Object[] all = group.shared.clone();
    group.await(rank, waitMs, killed);
    return all;
  }

  /**
   * Waits, with no time limit, until worker 0 has left the group (it ended, or its task failed);
   * fails only when this worker's task is killed. For workers whose share worker 0 trains.
   */
  public void awaitLeader() throws IOException {
    group.awaitLeft(0, rank, killed);
  }

  /** Fails, naming the worker, when another worker has left the group or this worker's task was killed. */
  public void checkOthers() throws IOException {
    group.check(rank, killed);
  }

  @Override
  public void allreduce(float[] data, double[] stats) throws IOException {
    float[] sum = publishAndSum(data, stats, 1f);
    System.arraycopy(sum, 0, data, 0, data.length);
  }

  @Override
  public boolean offHeapSteps(boolean here) throws IOException {
    offHeapAgreed = GradientExchange.super.offHeapSteps(here);
    return offHeapAgreed;
  }

  /**
   * Runners on GPUs (the gradients not in this JVM's heap; every worker's, see
   * {@link #offHeapSteps}) sum as {@link OffHeapStep} says: at small batches, the largest dense
   * layer's weight gradient in factored form; others as {@link GradientExchange#step} says.
   */
  @Override
  public void step(ModelRunner runner, Optimizer optimizer, float[] scratch, double[] stats,
                   java.util.function.Consumer<double[]> check) throws IOException {
    if (runner.hostGradients() == null && offHeapAgreed) {
      offHeap.step(this, rank, group.size, runner, optimizer, scratch, stats, check);
    } else {
      GradientExchange.super.step(runner, optimizer, scratch, stats, check);
    }
  }

  @Override
  public float[] mean(float[] grads, double[] stats) throws IOException {
    // The summed count is known before any gradient is added: the division folds into the sum.
    return publishAndSum(grads, stats, Float.NaN);
  }

  /**
   * Publishes {@code data} and {@code stats} and waits for every worker's; sums the stats (in
   * rank order, as every worker does), then this worker's slice of the data into the shared
   * buffer, multiplied by {@code scale} (NaN: by the inverse of the summed count, the last stat);
   * returns the buffer once every slice is done.
   * The buffer stays valid until this worker's next call: no worker writes it again before every
   * worker has published its next gradient.
   */
  private float[] publishAndSum(float[] data, double[] stats, float scale) throws IOException {
    Group g = group;
    g.data[rank] = data;
    g.stats[rank] = stats.clone();
    g.await(rank, timeoutMs, killed);
    double[] total = g.stats[0].clone();
    for (int r = 1; r < g.size; r++) {
      if (g.data[r].length != data.length || g.stats[r].length != stats.length) {
        throw new IllegalStateException("worker " + r + " sent " + g.data[r].length + " floats, worker " + rank
            + " " + data.length);
      }
      for (int i = 0; i < total.length; i++) {
        total[i] += g.stats[r][i];
      }
    }
    System.arraycopy(total, 0, stats, 0, stats.length);
    float inv = Float.isNaN(scale) ? (float) (1 / total[total.length - 1]) : scale;
    float[] out = g.buffer(data.length);
    // Slices in multiples of 64 floats, so that every worker's loop runs whole vectors.
    int per = ((data.length + g.size - 1) / g.size + 63) / 64 * 64;
    int end = Math.min(data.length, (rank + 1) * per);
    sumSlice(g, out, Math.min(data.length, rank * per), end, inv);
    g.await(rank, timeoutMs, killed);
    return out;
  }

  private static void sumSlice(Group g, float[] out, int from, int to, float inv) {
    float[] first = g.data[0];
    if (g.size == 2) {
      float[] second = g.data[1];
      for (int i = from; i < to; i++) {
        out[i] = (first[i] + second[i]) * inv;
      }
      return;
    }
    System.arraycopy(first, from, out, from, to - from);
    for (int r = 1; r < g.size - 1; r++) {
      float[] d = g.data[r];
      for (int i = from; i < to; i++) {
        out[i] += d[i];
      }
    }
    float[] last = g.data[g.size - 1];
    for (int i = from; i < to; i++) {
      out[i] = (out[i] + last[i]) * inv;
    }
  }

  @Override
  public void close() {
    group.leave(rank);
  }

  @Override
  public String toString() {
    return "LocalExchange(rank " + rank + " of " + group.size + ")";
  }

  /** The shared state of one run's workers, and the barrier they meet at. */
  private static final class Group {
    final String key;
    final int size;
    final float[][] data;
    final double[][] stats;
    final Object[] shared;
    private float[] buffer = new float[0];
    private final boolean[] arrived;
    private final boolean[] left;
    private int waiting;
    private long generation;
    private int members;
    private int firstLeft = -1;

    Group(String key, int size) {
      this.key = key;
      this.size = size;
      this.data = new float[size][];
      this.stats = new double[size][];
      this.shared = new Object[size];
      this.arrived = new boolean[size];
      this.left = new boolean[size];
      this.members = size;
    }

    synchronized float[] buffer(int n) {
      if (buffer.length != n) {
        buffer = new float[n];
      }
      return buffer;
    }

    /** Waits until every worker has arrived here; fails when one left or did not come in time. */
    synchronized void await(int rank, int timeoutMs, BooleanSupplier killed) throws IOException {
      long gen = generation;
      arrived[rank] = true;
      if (++waiting == size) {
        waiting = 0;
        java.util.Arrays.fill(arrived, false);
        generation++;
        notifyAll();
        return;
      }
      long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
      while (generation == gen) {
        if (firstLeft >= 0) {
          // The first to leave is the cause; the others left because of it.
          throw new IOException("gradient exchange: worker " + firstLeft + " stopped (its task failed or ended) while worker "
              + rank + " waited for it");
        }
        long left = deadline - System.nanoTime();
        if (left <= 0) {
          throw new IOException("gradient exchange: worker(s) " + missing() + " did not arrive within "
              + timeoutMs / 1000 + " s");
        }
        if (killed.getAsBoolean()) {
          throw new IOException("gradient exchange: worker " + rank + "'s task was killed");
        }
        try {
          // Woken at once by the last worker to arrive; the bounded wait notices a killed task.
          wait(Math.max(1, Math.min(left / 1_000_000L, 500)));
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new IOException("gradient exchange: worker " + rank + " was interrupted", e);
        }
      }
    }

    /** Waits until worker {@code who} has left; fails only when {@code rank}'s task is killed. */
    synchronized void awaitLeft(int who, int rank, BooleanSupplier killed) throws IOException {
      while (!left[who]) {
        if (killed.getAsBoolean()) {
          throw new IOException("gradient exchange: worker " + rank + "'s task was killed");
        }
        try {
          wait(500);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new IOException("gradient exchange: worker " + rank + " was interrupted", e);
        }
      }
    }

    synchronized void check(int rank, BooleanSupplier killed) throws IOException {
      if (firstLeft >= 0) {
        throw new IOException("gradient exchange: worker " + firstLeft + " stopped (its task failed or ended) while worker "
            + rank + " trained its share");
      }
      if (killed.getAsBoolean()) {
        throw new IOException("gradient exchange: worker " + rank + "'s task was killed");
      }
    }

    private String missing() {
      StringBuilder b = new StringBuilder();
      for (int r = 0; r < size; r++) {
        if (!arrived[r]) {
          b.append(b.length() == 0 ? "" : ", ").append(r);
        }
      }
      return b.toString();
    }

    synchronized void leave(int rank) {
      if (!left[rank]) {
        left[rank] = true;
        firstLeft = firstLeft < 0 ? rank : firstLeft;
        notifyAll();
        if (--members == 0) {
          GROUPS.remove(key, this);
        }
      }
    }
  }
}
