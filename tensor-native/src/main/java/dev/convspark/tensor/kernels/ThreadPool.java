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
 *
 * <p>A loop is done when its indices are, not when every worker has looked in: each loop has
 * counters of its own, so a worker the operating system has not run yet (more threads than free
 * cores) neither holds the caller up nor can take an index of a later loop. Spinning threads yield
 * their core now and then, to the threads that have work. (With every worker required to check in,
 * deep-mnist training on 2 cores fell from 2,608 images/s with 2 threads to 641 with 4 and 210
 * with 16.)
 */
public final class ThreadPool implements AutoCloseable {

  /** Spins (about 50 microseconds) before an idle worker parks. */
  private static final int SPINS = 20_000;
  /** A spinning thread yields its core once in this many spins. */
  private static final int YIELD_EVERY = 128;

  /** One loop: its body, its size and its own counters. */
  private static final class Loop {
    final IntConsumer body;
    final int size;
    final AtomicInteger next = new AtomicInteger();
    /** Indices claimed and finished (or skipped after a failure). */
    final AtomicInteger done = new AtomicInteger();
    final AtomicReference<Throwable> failure = new AtomicReference<>();

    Loop(IntConsumer body, int size) {
      this.body = body;
      this.size = size;
    }

    /** Takes indices until none is left; after a failure, the rest are claimed and skipped. */
    void run() {
      int finished = 0;
      for (int i; (i = next.getAndIncrement()) < size; finished++) {
        if (failure.get() == null) {
          try {
            body.accept(i);
          } catch (Throwable t) {
            failure.compareAndSet(null, t);
          }
        }
      }
      if (finished > 0) {
        done.addAndGet(finished);
      }
    }
  }

  private final int threads;
  private final Thread[] workers;
  private volatile Loop loop;
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
        Loop l = loop;
        if (l != null) {
          l.run();
        }
        continue;
      }
      for (int i = 1; i <= SPINS && generation == seen && !closed; i++) {
        spin(i);
      }
      if (generation == seen && !closed) {
        LockSupport.park(this);
      }
    }
  }

  private static void spin(int i) {
    if (i % YIELD_EVERY == 0) {
      Thread.yield();
    } else {
      Thread.onSpinWait();
    }
  }

  /**
   * Bytes of heap allocated so far by the pool's workers and, when {@code withCaller}, the calling
   * thread (as the JVM counts them per thread); -1 where the JVM does not count them. The kernels'
   * loops allocate almost nothing, so this tells a vector kernel that the JIT compiled with its
   * vectors on the heap (see {@code CpuBackend}).
   */
  public long allocatedBytes(boolean withCaller) {
    long[] ids = new long[workers.length + (withCaller ? 1 : 0)];
    for (int i = 0; i < workers.length; i++) {
      ids[i] = workers[i].getId();
    }
    if (withCaller) {
      ids[workers.length] = Thread.currentThread().getId();
    }
    return ids.length == 0 ? -1 : Allocation.bytes(ids);
  }

  /** The JVM's per-thread allocation counters, where its management module is present. */
  private static final class Allocation {
    private static final java.lang.management.ThreadMXBean MX = bean();

    private static java.lang.management.ThreadMXBean bean() {
      try {
        java.lang.management.ThreadMXBean mx = java.lang.management.ManagementFactory.getThreadMXBean();
        if (mx instanceof com.sun.management.ThreadMXBean sun && sun.isThreadAllocatedMemorySupported()
            && sun.isThreadAllocatedMemoryEnabled()) {
          return mx;
        }
      } catch (LinkageError | RuntimeException e) {
        // A runtime without java.management or jdk.management: nothing to count with.
      }
      return null;
    }

    static long bytes(long[] ids) {
      if (MX == null) {
        return -1;
      }
      long sum = 0;
      for (long b : ((com.sun.management.ThreadMXBean) MX).getThreadAllocatedBytes(ids)) {
        if (b < 0) {
          return -1;
        }
        sum += b;
      }
      return sum;
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
    Loop l = new Loop(body, n);
    loop = l;
    generation++;
    for (Thread w : workers) {
      LockSupport.unpark(w);
    }
    l.run();
    // Only indices a worker took and has not finished remain.
    for (int i = 1; l.done.get() < n; i++) {
      spin(i);
    }
    loop = null;
    Throwable t = l.failure.get();
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
