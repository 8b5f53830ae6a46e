package dev.convspark.ml.exchange;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.tensor.backend.CpuBackend;
import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.optim.Optimizer;
import dev.convspark.tensor.spec.ModelSpec;
import java.io.IOException;
import java.net.ServerSocket;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The in-memory exchange of workers sharing a JVM, against the socket exchange: the same sums and
 * the same parameters, bit for bit, and failures that name the worker instead of hanging.
 */
class LocalExchangeTest {

  private static final String SPEC = "in8x8x1-conv3x3x4-relu-pool2-dense10";
  private final ExecutorService pool = Executors.newCachedThreadPool();

  @AfterEach
  void stop() {
    pool.shutdownNow();
  }

  /** Opens the exchange of {@code rank} in a run of {@code size}: in memory, or over loopback sockets. */
  private interface Opener {
    GradientExchange open(int rank) throws IOException;
  }

  private Opener local(int size) {
    String secret = UUID.randomUUID().toString();
    return rank -> LocalExchange.join(secret, rank, size, 20_000, () -> false);
  }

  private Opener sockets(int size, ServerSocket server) {
    return rank -> rank == 0 ? StarAllreduce.hub(server, size, "s", 20_000)
        : StarAllreduce.spoke(rank, size, "127.0.0.1", server.getLocalPort(), "s", 20_000);
  }

  private interface Work<T> {
    T run(int rank, GradientExchange ex) throws Exception;
  }

  private <T> List<T> runAll(int size, Opener opener, Work<T> work) throws Exception {
    List<Future<T>> fs = new ArrayList<>();
    for (int r = 0; r < size; r++) {
      int rank = r;
      fs.add(pool.submit(() -> {
        try (GradientExchange ex = opener.open(rank)) {
          return work.run(rank, ex);
        }
      }));
    }
    List<T> out = new ArrayList<>();
    for (Future<T> f : fs) {
      out.add(f.get());
    }
    return out;
  }

  private static float[] random(int n, long seed) {
    SplittableRandom r = new SplittableRandom(seed);
    float[] a = new float[n];
    for (int i = 0; i < n; i++) {
      a[i] = (float) (r.nextGaussian() * Math.pow(10, r.nextInt(-3, 4)));
    }
    return a;
  }

  @Test
  void sumsAndMeansAreTheSocketExchangesBitForBit() throws Exception {
    int size = 3;
    int n = 200_003; // not a multiple of the slice alignment
    Work<float[][]> work = (rank, ex) -> {
      float[] a = random(n, rank);
      double[] stats = {rank + 0.5, rank, 10 + rank};
      ex.allreduce(a, stats);
      float[] b = random(n, 100 + rank);
      double[] st2 = {1, 2, 7 * (rank + 1)};
      float[] mean = ex.mean(b, st2).clone();
      String[] gathered = ex.gather("worker " + rank, 20_000);
      assertEquals(List.of("worker 0", "worker 1", "worker 2"), List.of(gathered));
      return new float[][] {a, mean, {(float) stats[0], (float) stats[2], (float) st2[2]}};
    };
    List<float[][]> mem = runAll(size, local(size), work);
    List<float[][]> net;
    try (ServerSocket server = Wire.listen("127.0.0.1")) {
      net = runAll(size, sockets(size, server), work);
    }
    for (int r = 0; r < size; r++) {
      for (int k = 0; k < 3; k++) {
        assertArrayEquals(net.get(0)[k], mem.get(r)[k], "worker " + r + ", result " + k);
      }
    }
    assertEquals(42f, mem.get(0)[2][2]);
  }

  /**
   * Runners whose gradients are not in the heap (GPUs in one JVM) at a small batch: their first
   * dense layer's weight gradient summed from the samples' rows, the same parameters bit for bit
   * in memory as over sockets.
   */
  @Test
  void runnersOffTheHeapSumTheirFactorsAsTheSocketExchangeDoes() throws Exception {
    int[] counts = {5, 3};
    String spec = "in8x8x1-conv3x3x4-relu-pool2-dense64-relu-dense10";
    Work<float[]> work = (rank, ex) -> OffHeapRunner.steps(ex, rank, counts, true, spec);
    List<float[]> mem = runAll(2, local(2), work);
    List<float[]> net;
    try (ServerSocket server = Wire.listen("127.0.0.1")) {
      net = runAll(2, sockets(2, server), work);
    }
    for (int r = 0; r < 2; r++) {
      assertArrayEquals(net.get(0), mem.get(r), "worker " + r + " in memory against the sockets' worker 0");
      assertArrayEquals(net.get(0), net.get(r), "worker " + r + " over sockets against worker 0");
    }
  }

  @Test
  void aWorkerThatLeavesMakesTheOthersFailNamingIt() throws Exception {
    Opener open = local(3);
    List<Future<Object>> fs = new ArrayList<>();
    for (int r = 0; r < 3; r++) {
      int rank = r;
      fs.add(pool.submit(() -> {
        try (GradientExchange ex = open.open(rank)) {
          if (rank == 2) {
            return null; // its task failed before the first exchange
          }
          ex.allreduce(new float[10], new double[] {1});
          return null;
        }
      }));
    }
    for (int r = 0; r < 2; r++) {
      ExecutionException e = assertThrows(ExecutionException.class, fs.get(r)::get);
      assertTrue(e.getCause().getMessage().contains("worker 2 stopped"), e.getCause().getMessage());
    }
  }

  @Test
  void aWorkerThatNeverComesTimesOutNamingIt() throws Exception {
    String secret = UUID.randomUUID().toString();
    try (GradientExchange ex = LocalExchange.join(secret, 0, 2, 300, () -> false)) {
      IOException e = assertThrows(IOException.class, () -> ex.allreduce(new float[4], new double[] {1}));
      assertTrue(e.getMessage().contains("worker(s) 1 did not arrive"), e.getMessage());
    }
    try (GradientExchange ex = LocalExchange.join(UUID.randomUUID().toString(), 1, 2, 60_000, () -> true)) {
      IOException e = assertThrows(IOException.class, () -> ex.gather("x", 60_000));
      assertTrue(e.getMessage().contains("killed"), e.getMessage());
    }
  }
}
