package dev.convspark.tensor.kernels;

import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntConsumer;

/**
 * A fixed number of threads for data-parallel loops. The calling thread works too, so a pool of
 * {@code n} threads starts {@code n - 1} workers. Inside a Spark task, give it the task's cores.
 */
public final class ThreadPool implements AutoCloseable {

  private final int threads;
  private final ExecutorService workers;

  /** @param threads how many threads run a loop, the caller included; at least 1 */
  public ThreadPool(int threads) {
    if (threads < 1) {
      throw new IllegalArgumentException("threads must be >= 1 but was " + threads);
    }
    this.threads = threads;
    AtomicInteger id = new AtomicInteger();
    this.workers = threads == 1 ? null : Executors.newFixedThreadPool(threads - 1, r -> {
      Thread t = new Thread(r, "convspark-cpu-" + id.incrementAndGet());
      t.setDaemon(true);
      return t;
    });
  }

  /** The number of threads, the caller included. */
  public int threads() {
    return threads;
  }

  /** Runs {@code body} for every index in {@code [0, n)}, spread over the threads; returns when all are done. */
  public void parallelFor(int n, IntConsumer body) {
    if (workers == null || n <= 1) {
      for (int i = 0; i < n; i++) {
        body.accept(i);
      }
      return;
    }
    AtomicInteger next = new AtomicInteger();
    Runnable loop = () -> {
      for (int i; (i = next.getAndIncrement()) < n; ) {
        body.accept(i);
      }
    };
    int helpers = Math.min(threads - 1, n - 1);
    @SuppressWarnings("unchecked")
    Future<?>[] futures = new Future<?>[helpers];
    for (int h = 0; h < helpers; h++) {
      futures[h] = workers.submit(loop);
    }
    Throwable failure = null;
    try {
      loop.run();
    } catch (RuntimeException | Error e) {
      failure = e;
    }
    for (Future<?> f : futures) {
      try {
        f.get();
      } catch (ExecutionException e) {
        if (failure == null) {
          failure = e.getCause();
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        if (failure == null) {
          failure = e;
        }
      }
    }
    if (failure instanceof RuntimeException re) {
      throw re;
    } else if (failure instanceof Error err) {
      throw err;
    } else if (failure != null) {
      throw new IllegalStateException("parallel loop interrupted", failure);
    }
  }

  @Override
  public void close() {
    if (workers != null) {
      workers.shutdownNow();
    }
  }
}
