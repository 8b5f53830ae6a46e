package dev.convspark.ml;

import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.optim.Optimizer;
import java.io.IOException;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.BooleanSupplier;

/**
 * The gradient exchange of workers that run as tasks of one JVM (Spark's local mode, or an
 * executor that runs every worker of the run): the workers publish their gradient arrays and each
 * one sums its own slice of the parameters over all of them, in rank order, into a shared buffer.
 * No bytes are encoded and no socket is crossed, and the summing is spread over the workers
 * instead of falling to rank 0. The sums are the same, bit for bit, as {@link StarAllreduce}'s.
 *
 * <p>Workers find their group by the run's secret (made by rank 0 for each stage attempt and
 * shared through Spark's {@code allGather}). A worker that leaves early (its task failed) or does
 * not arrive within the timeout makes the others fail with a message naming it, never wait forever;
 * so does a task Spark has killed.
 */
final class LocalExchange implements GradientExchange {

  /** This JVM, as the workers tell each other in Spark's {@code allGather}. */
  static final String JVM_ID = UUID.randomUUID().toString();

  private static final ConcurrentHashMap<String, Group> GROUPS = new ConcurrentHashMap<>();

  private final Group group;
  private final int rank;
  private final int timeoutMs;
  private final BooleanSupplier killed;

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
  static LocalExchange join(String secret, int rank, int size, int timeoutMs, BooleanSupplier killed) {
    Group g = GROUPS.computeIfAbsent(secret, k -> new Group(k, size));
    if (g.size != size || rank < 0 || rank >= size) {
      throw new IllegalStateException("worker " + rank + " of " + size + " cannot join a group of " + g.size);
    }
    return new LocalExchange(g, rank, timeoutMs, killed);
  }

  @Override
  public String[] gather(String mine, int waitMs) throws IOException {
    group.strings[rank] = mine;
    group.await(rank, waitMs, killed);
    String[] all = group.strings.clone();
    group.await(rank, waitMs, killed);
    return all;
  }

  @Override
  public void allreduce(float[] data, double[] stats) throws IOException {
    float[] sum = publishAndSum(data, stats, 1f, null);
    System.arraycopy(sum, 0, data, 0, data.length);
  }

  @Override
  public float[] mean(float[] grads, double[] stats) throws IOException {
    // The summed count is known before any gradient is added: the division folds into the sum.
    return publishAndSum(grads, stats, Float.NaN, null);
  }

  /**
   * Where every replica keeps its parameters in this JVM's heap (the CPU), the update is sharded:
   * each worker sums its slice of the gradients and applies rank 0's optimizer to that slice of
   * rank 0's parameters; then the other workers copy rank 0's parameters. The optimizer's work is
   * split over the workers instead of repeated by each, and no gradient is copied. Rank 0's
   * optimizer is then the one whose state is current (the others' stay as they started); the
   * parameters are the same, bit for bit, as {@link GradientExchange#step} gives. Otherwise (a
   * GPU), each replica applies the mean gradient itself, as there.
   */
  @Override
  public void step(ModelRunner runner, Optimizer optimizer, float[] scratch, double[] stats,
                   java.util.function.Consumer<double[]> check) throws IOException {
    Group g = group;
    float[] params = runner.hostParameters();
    float[] grads = runner.hostGradients();
    if (sharded == null) {
      // Decided once, at the first step, by all workers alike.
      g.host[rank] = params != null && grads != null;
      g.await(rank, timeoutMs, killed);
      sharded = g.allHost();
    }
    if (!sharded) {
      GradientExchange.super.step(runner, optimizer, scratch, stats, check);
      return;
    }
    if (rank == 0) {
      // Before the first barrier, so before any worker updates a slice with it.
      optimizer.beginStep();
      g.params0 = params;
      g.optimizer0 = optimizer;
    }
    publishAndSum(grads, stats, Float.NaN, check);
    if (rank != 0) {
      System.arraycopy(g.params0, 0, params, 0, params.length);
    }
  }

  private Boolean sharded;

  /**
   * Publishes {@code data} and {@code stats} and waits for every worker's; sums the stats (in
   * rank order, as every worker does), then this worker's slice of the data into the shared
   * buffer, multiplied by {@code scale} (NaN: by the inverse of the summed count, the last stat);
   * returns the buffer once every slice is done. With {@code check} set (the sharded step), the
   * summed stats go to it first (it throws to stop) and each slice is then applied at once with
   * rank 0's optimizer to rank 0's parameters.
   * The buffer stays valid until this worker's next call: no worker writes it again before every
   * worker has published its next gradient.
   */
  private float[] publishAndSum(float[] data, double[] stats, float scale,
                                java.util.function.Consumer<double[]> check) throws IOException {
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
    if (check != null) {
      check.accept(stats);
    }
    float inv = Float.isNaN(scale) ? (float) (1 / total[total.length - 1]) : scale;
    float[] out = g.buffer(data.length);
    // Slices in multiples of 64 floats, so that every worker's loop runs whole vectors.
    int per = ((data.length + g.size - 1) / g.size + 63) / 64 * 64;
    int end = Math.min(data.length, (rank + 1) * per);
    // In pieces that stay in cache between the sum and the optimizer.
    for (int from = Math.min(data.length, rank * per); from < end; from += PIECE) {
      int to = Math.min(end, from + PIECE);
      sumSlice(g, out, from, to, inv);
      if (check != null) {
        g.optimizer0.update(g.params0, out, from, to);
      }
    }
    g.await(rank, timeoutMs, killed);
    return out;
  }

  /** Floats summed and updated at a time (64 KB). */
  private static final int PIECE = 1 << 14;

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
    final String[] strings;
    final boolean[] host;
    volatile float[] params0;
    volatile Optimizer optimizer0;
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
      this.strings = new String[size];
      this.host = new boolean[size];
      this.arrived = new boolean[size];
      this.left = new boolean[size];
      this.members = size;
    }

    synchronized boolean allHost() {
      for (boolean h : host) {
        if (!h) {
          return false;
        }
      }
      return true;
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
