package dev.convspark.tensor.kernels;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;
import java.util.function.IntConsumer;

/**
 * A fixed number of threads for data-parallel loops. The calling thread works too, so a pool of
 * {@code n} threads starts {@code n - 1} workers. Inside a Spark task, give it the task's cores.
 *
 * <p>A training step runs dozens of short loops, so hand-off latency matters: idle workers spin
 * briefly on a generation counter before they park, and a loop is published with two volatile
 * writes rather than a queue. Loops run one at a time (calls are serialised) and must not nest.
 */
public final class ThreadPool implements AutoCloseable {

  /** Spins (about 50 microseconds) before an idle worker parks. */
  private static final int SPINS = 20_000;

  private final int threads;
  private final Thread[] workers;
  private final AtomicInteger next = new AtomicInteger();
  private final AtomicInteger pending = new AtomicInteger();
  private final AtomicReference<Throwable> failure = new AtomicReference<>();
  private volatile IntConsumer body;
  private volatile int size;
  private volatile long generation;
  private volatile boolean closed;

  /** @param threads how many threads run a loop, the caller included; at least 1 */
  public ThreadPool(int threads) {
    if (threads < 1) {
      throw new IllegalArgumentException("threads must be >= 1 but was " + threads);
    }
    this.threads = threads;
    this.workers = new Thread[threads - 1];
    for (int i = 0; i < workers.length; i++) {
      workers[i] = new Thread(this::work, "convspark-cpu-" + (i + 1));
      workers[i].setDaemon(true);
      workers[i].start();
    }
  }

  /** The number of threads, the caller included. */
  public int threads() {
    return threads;
  }

  private void work() {
    long seen = 0;
    while (!closed) {
      long g = generation;
      if (g != seen) {
        seen = g;
        runShare();
        pending.decrementAndGet();
        continue;
      }
      for (int i = 0; i < SPINS && generation == seen && !closed; i++) {
        Thread.onSpinWait();
      }
      if (generation == seen && !closed) {
        LockSupport.park(this);
      }
    }
  }

  private void runShare() {
    IntConsumer b = body;
    int n = size;
    try {
      for (int i; (i = next.getAndIncrement()) < n; ) {
        b.accept(i);
      }
    } catch (Throwable t) {
      failure.compareAndSet(null, t);
      next.set(n);
    }
  }

  /** Runs {@code body} for every index in {@code [0, n)}, spread over the threads; returns when all are done. */
  public synchronized void parallelFor(int n, IntConsumer body) {
    if (workers.length == 0 || n <= 1) {
      for (int i = 0; i < n; i++) {
        body.accept(i);
      }
      return;
    }
    if (closed) {
      throw new IllegalStateException("thread pool is closed");
    }
    this.body = body;
    this.size = n;
    next.set(0);
    failure.set(null);
    pending.set(workers.length);
    generation++;
    for (Thread w : workers) {
      LockSupport.unpark(w);
    }
    runShare();
    while (pending.get() > 0) {
      Thread.onSpinWait();
    }
    this.body = null;
    Throwable t = failure.get();
    if (t instanceof RuntimeException re) {
      throw re;
    } else if (t instanceof Error err) {
      throw err;
    } else if (t != null) {
      throw new IllegalStateException("parallel loop failed", t);
    }
  }

  @Override
  public void close() {
    closed = true;
    for (Thread w : workers) {
      LockSupport.unpark(w);
    }
  }
}
