package dev.convspark.ml.exchange;

import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.kernels.Kernels;
import dev.convspark.tensor.layers.FactoredGradients;
import dev.convspark.tensor.optim.Optimizer;
import java.io.IOException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.Consumer;

/**
 * What the socket exchanges share: a step's array is sent in chunks by threads of their own
 * ({@link Flow}), starting while the backward pass is still computing the gradients (on the CPU,
 * where they are in this JVM's heap, see {@link #beginStep}); the step's statistics follow once
 * the array is summed.
 */
abstract class SocketExchange implements GradientExchange {

  final int rank;
  final int size;
  private ExecutorService helpers;
  /** The step begun by {@link #beginStep}, streaming as the backward pass goes, or null. */
  private Flow streaming;
  /** The steps of runners whose gradients are not in this JVM's heap, where every worker's are not (see {@link #offHeapSteps}). */
  private final OffHeapStep offHeap = new OffHeapStep();
  private boolean offHeapAgreed;
  /** Whether the optimizer's update is sharded between the workers (see {@link #shardUpdates}). */
  boolean sharded;

  SocketExchange(int rank, int size) {
    this.rank = rank;
    this.size = size;
  }

  /**
   * Starts exchanging {@code data} (summing, or averaging when {@code mean}: {@code count} is this
   * worker's sample count) on helper threads; when not {@code ready}, a chunk leaves only once the
   * flow has been told that it is final.
   */
  abstract Flow start(float[] data, double count, boolean mean, boolean ready);

  /**
   * As {@link #start}, for a sharded step: each worker applies {@code optimizer} (its step begun
   * already) to the part of {@code params} whose mean gradient it completes, and the workers then
   * gather the updated parameters instead of the mean gradients. {@code dense}: the layer whose
   * weight gradient the exchange may take as factors (see {@link FactoredGradients}), or null.
   * Only where {@link #sharded}.
   */
  Flow startSharded(float[] grads, double count, float[] params, Optimizer optimizer, ModelRunner.DenseWeights dense) {
    throw new UnsupportedOperationException(getClass().getSimpleName() + " does not shard the update");
  }

  /** Waits for {@code f}'s array, then replaces {@code stats} with its sums over all workers. */
  abstract void finish(Flow f, double[] stats) throws IOException;

  /**
   * On the CPU (the gradients in this JVM's heap), starts sending this step's gradients while the
   * backward pass is still computing them: it finishes the layers from the last to the first,
   * and the first dense layer, 98% of deep-mnist's gradients, comes second. Each chunk goes out
   * (last chunk first) as soon as the runner says it is final. {@code count}: the samples this
   * worker's gradient sums, known before the gradient is. With the update sharded, the step of
   * {@code optimizer} begins here too: each worker updates its part of the parameters as soon as
   * the part's mean gradient is complete, while the backward pass runs on.
   */
  @Override
  public void beginStep(ModelRunner runner, Optimizer optimizer, int count) throws IOException {
    float[] grads = runner.hostGradients();
    if (size == 1 || grads == null) {
      return;
    }
    if (sharded && optimizer != null && runner.hostParameters() != null) {
      optimizer.beginStep();
      streaming = startSharded(grads, count, runner.hostParameters(), optimizer, runner.largestDense());
    } else {
      streaming = start(grads, count, true, false);
    }
    runner.setGradientListener(streaming);
  }

  /**
   * Finishes the step: the gradient's mean arrives (streamed since {@link #beginStep}, or sent
   * now), the summed statistics after it, which {@code check} sees before anything changes, then
   * the update. A lone worker scales its gradients where they are
   * ({@link GradientExchange#alone}); gradients on GPUs (every worker's, see {@link #offHeapSteps})
   * are summed as {@link OffHeapStep} says (at small batches, the largest dense layer's in factored
   * form); a worker's on a GPU among workers on CPUs are copied out through {@code scratch} and the
   * mean back. A sharded step has updated the parameters already, before {@code check}
   * sees the sums (a check that stops the run leaves them changed; nothing is saved then).
   */
  @Override
  public void step(ModelRunner runner, Optimizer optimizer, float[] scratch, double[] stats,
                   Consumer<double[]> check) throws IOException {
    if (size == 1) {
      GradientExchange.alone(runner, optimizer, stats, check);
      return;
    }
    Flow f = streaming;
    streaming = null;
    float[] live = runner.hostGradients();
    if (f == null && live == null && offHeapAgreed) {
      offHeap.step(this, rank, size, runner, optimizer, scratch, stats, check);
      return;
    }
    if (f == null) {
      if (live == null) {
        runner.copyGradientsTo(scratch);
      }
      f = start(live != null ? live : scratch, stats[stats.length - 1], true, true);
    } else {
      runner.setGradientListener(null);
      f.accept(0);
    }
    finishOrAbandon(f, stats);
    check.accept(stats);
    if (f.params != null) {
      return;
    }
    if (f.data != live) {
      runner.copyGradientsFrom(f.data);
    }
    runner.applyGradients(optimizer);
  }

  @Override
  public boolean offHeapSteps(boolean here) throws IOException {
    offHeapAgreed = GradientExchange.super.offHeapSteps(here);
    return offHeapAgreed;
  }

  @Override
  public void allreduce(float[] data, double[] stats) throws IOException {
    if (size > 1) {
      finishOrAbandon(start(data, stats[stats.length - 1], false, true), stats);
    }
  }

  /**
   * The count travels before the chunks, so the sums are divided as they are made and no worker
   * makes a pass of its own over them: the same products as dividing after.
   */
  @Override
  public float[] mean(float[] grads, double[] stats) throws IOException {
    if (size == 1) {
      return GradientExchange.divideByCount(grads, stats);
    }
    finishOrAbandon(start(grads, stats[stats.length - 1], true, true), stats);
    return grads;
  }

  private void finishOrAbandon(Flow f, double[] stats) throws IOException {
    boolean done = false;
    try {
      try {
        finish(f, stats);
      } catch (IOException e) {
        // A helper's failure abandons the others: report it, not theirs.
        IOException cause = f.failure();
        throw cause != null && cause != e.getCause() ? new IOException(cause.getMessage(), cause) : e;
      }
      if (stats[stats.length - 1] != f.total) {
        throw new IOException("gradient exchange: the workers announced " + f.total + " samples before the step but"
            + " their statistics count " + stats[stats.length - 1]);
      }
      done = true;
    } finally {
      if (!done) {
        f.abandon();
      }
    }
  }

  /** Submits {@code task} to this exchange's helper threads. */
  final Future<?> submit(java.util.concurrent.Callable<?> task) {
    if (helpers == null) {
      helpers = Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r, "convspark-gradient-exchange-" + rank);
        t.setDaemon(true);
        return t;
      });
    }
    return helpers.submit(task);
  }

  /** Waits for {@code f}; what it threw, as an IOException. */
  static void await(Future<?> f) throws IOException {
    try {
      f.get();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("gradient exchange interrupted", e);
    } catch (java.util.concurrent.CancellationException e) {
      throw new IOException("gradient exchange: the step was abandoned", e);
    } catch (ExecutionException e) {
      Throwable c = e.getCause();
      throw c instanceof IOException io ? new IOException(io.getMessage(), io)
          : new IOException("gradient exchange failed: " + c, c);
    }
  }

  /** Stops the flow in progress and the helper threads; the subclass closes its sockets. */
  void stopHelpers() {
    if (streaming != null) {
      streaming.abandon();
    }
    if (helpers != null) {
      helpers.shutdownNow();
    }
  }

  /** Sums of {@code all}'s vectors in rank order, into {@code stats}. */
  static void sumInRankOrder(double[][] all, double[] stats) {
    System.arraycopy(all[0], 0, stats, 0, stats.length);
    for (int r = 1; r < all.length; r++) {
      for (int i = 0; i < stats.length; i++) {
        stats[i] += all[r][i];
      }
    }
  }

  /** What takes a dense layer's factors for a flow (see {@link FactoredGradients#takeFactors}). */
  interface FactorTaker {
    boolean take(Kernels k, int weightOffset, int inputs, int units, float[] x, float[] dy, int n)
        throws IOException, InterruptedException;
  }

  /**
   * One exchange of an array in flight: which part of it is final (the runner's gradient listener
   * lowers the index from which it is), the helper threads carrying it, and the total sample count
   * once every worker's has arrived. As the runner's listener, it hands a dense layer's factors to
   * {@link #factors} when the exchange set one.
   */
  static final class Flow implements FactoredGradients {
    final float[] data;
    final double count;
    final boolean mean;
    /** A sharded step: the parameters the workers update and gather, and the optimizer; else null. */
    float[] params;
    Optimizer optimizer;
    /** The sum of every worker's count, which a mean divides by. */
    volatile double total = Double.NaN;
    private int readyFrom;
    private boolean abandoned;
    /** Why the flow was abandoned, when a helper failed. */
    private IOException failure;
    Future<?>[] tasks = new Future<?>[0];
    /** Takes a dense layer's factors in this flow, or null (the layers compute their gradients). */
    FactorTaker factors;

    Flow(float[] data, double count, boolean mean, boolean ready) {
      this.data = data;
      this.count = count;
      this.mean = mean;
      this.readyFrom = ready ? 0 : data.length;
    }

    /** Runs on the backward pass's thread after each {@link #accept}, outside the lock; or null. */
    java.util.function.IntConsumer afterReady;

    /** Everything from {@code from} on is final (the runner's gradient listener). */
    @Override
    public void accept(int from) {
      synchronized (this) {
        if (from < readyFrom) {
          readyFrom = from;
          notifyAll();
        }
      }
      if (afterReady != null) {
        afterReady.accept(from);
      }
    }

    /** Abandons the flow for {@code e}, as a helper's failure does. */
    void fail(Exception e) {
      synchronized (this) {
        if (failure == null && !abandoned) {
          failure = e instanceof IOException io ? io : new IOException("gradient exchange failed: " + e, e);
        }
      }
      abandon();
    }

    /**
     * Asks {@link #factors}, on the backward pass's thread; false when there is none or the flow
     * failed meanwhile (the layer then computes its gradient, and the step fails where it ends).
     */
    @Override
    public boolean takeFactors(Kernels k, int weightOffset, int inputs, int units, float[] x, float[] dy, int n) {
      if (factors == null) {
        return false;
      }
      try {
        return factors.take(k, weightOffset, inputs, units, x, dy, n);
      } catch (IOException e) {
        return false;
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return false;
      }
    }

    /** Waits until everything from {@code from} on is final. */
    synchronized void awaitReady(int from) throws IOException, InterruptedException {
      while (readyFrom > from) {
        checkAbandoned();
        wait(100);
      }
    }

    /** Whether everything from {@code from} on is final. */
    synchronized boolean isReady(int from) {
      return readyFrom <= from;
    }

    /** What {@code done} says now, read under this flow's lock. */
    synchronized boolean holds(java.util.function.BooleanSupplier done) {
      return done.getAsBoolean();
    }

    /** Waits until {@code done} says yes; {@code done} is read under this flow's lock. */
    synchronized void await(java.util.function.BooleanSupplier done) throws IOException, InterruptedException {
      while (!done.getAsBoolean()) {
        checkAbandoned();
        wait(100);
      }
    }

    /** Wakes the threads waiting in {@link #await}, after a change they may be waiting for. */
    synchronized void changed() {
      notifyAll();
    }

    private void checkAbandoned() throws IOException {
      if (failure != null) {
        throw new IOException(failure.getMessage(), failure);
      }
      if (abandoned) {
        throw new IOException("gradient exchange: the step was abandoned");
      }
    }

    /**
     * Runs {@code task} (a helper's part of the flow); when it fails, abandons the flow, so that the
     * other helpers stop waiting for what it will never do and fail with its reason.
     */
    java.util.concurrent.Callable<Void> failing(java.util.concurrent.Callable<Void> task) {
      return () -> {
        try {
          return task.call();
        } catch (IOException | RuntimeException e) {
          fail(e);
          throw e;
        }
      };
    }

    /** The failure of a helper that abandoned the flow, or null. */
    synchronized IOException failure() {
      return failure;
    }

    synchronized void abandon() {
      abandoned = true;
      notifyAll();
      for (Future<?> f : tasks) {
        if (f != null) {
          f.cancel(true);
        }
      }
    }
  }
}
