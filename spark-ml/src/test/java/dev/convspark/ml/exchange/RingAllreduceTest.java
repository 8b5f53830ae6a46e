package dev.convspark.ml.exchange;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.tensor.backend.CpuBackend;
import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.optim.Adam;
import dev.convspark.tensor.optim.Optimizer;
import dev.convspark.tensor.spec.ModelSpec;
import java.io.DataOutputStream;
import java.io.FilterOutputStream;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The ring exchange over real loopback sockets, against sums made here in the ring's order. */
class RingAllreduceTest {

  private final ExecutorService pool = Executors.newCachedThreadPool();

  @AfterEach
  void stop() {
    pool.shutdownNow();
  }

  /** What one worker does with its exchange; returns what the test compares. */
  private interface Work<T> {
    T run(int rank, RingAllreduce ex) throws Exception;
  }

  /** Runs {@code work} on {@code size} workers joined in a ring over loopback, each through {@code shapers[rank]}. */
  private <T> List<T> ring(int size, Wire.Shaper[] shapers, Work<T> work) throws Exception {
    ServerSocket[] servers = new ServerSocket[size];
    for (int r = 0; r < size; r++) {
      servers[r] = Wire.listen("127.0.0.1");
    }
    try {
      List<Future<T>> futures = new ArrayList<>();
      for (int r = 0; r < size; r++) {
        int rank = r;
        futures.add(pool.submit(() -> {
          try (RingAllreduce ex = RingAllreduce.join(rank, size, servers[rank], "127.0.0.1",
              servers[(rank + 1) % size].getLocalPort(), "secret", 20_000, 20_000, () -> false,
              shapers == null ? Wire.NONE : shapers[rank])) {
            return work.run(rank, ex);
          }
        }));
      }
      List<T> out = new ArrayList<>();
      for (Future<T> f : futures) {
        out.add(f.get());
      }
      return out;
    } finally {
      for (ServerSocket s : servers) {
        s.close();
      }
    }
  }

  private static float[] gradient(int rank, int step, int n) {
    SplittableRandom g = new SplittableRandom(1000L * rank + step);
    float[] x = new float[n];
    for (int i = 0; i < n; i++) {
      x[i] = (float) g.nextGaussian() * (1 + rank);
    }
    return x;
  }

  /**
   * Chunk q (counted from the end) is summed starting at its owner's successor, each worker adding
   * its own copy to the partial sum: {@code ((g[o+1] + g[o+2]) + ...) + g[o]}, o = q mod N.
   */
  private static float[] ringSum(float[][] g, float scale) {
    int size = g.length;
    int n = g[0].length;
    float[] sum = new float[n];
    int per = RingAllreduce.chunk(n, size);
    for (int q = 0; q * per < Math.max(n, 1); q++) {
      int o = q % size;
      for (int i = Math.max(0, n - (q + 1) * per); i < n - q * per; i++) {
        float s = g[(o + 1) % size][i];
        for (int k = 2; k <= size; k++) {
          s = s + g[(o + k) % size][i];
        }
        sum[i] = Float.isNaN(scale) ? s : s * scale;
      }
    }
    return sum;
  }

  /** Every worker's shaper: {@code link}. */
  private static Wire.Shaper[] all(int size, Wire.Shaper link) {
    Wire.Shaper[] s = new Wire.Shaper[size];
    java.util.Arrays.fill(s, link);
    return s;
  }

  /** Whether this host has a {@code /dev/shm} to put a lane's file in (Linux has). */
  private static boolean sharedMemoryHere() {
    return java.nio.file.Files.isDirectory(MappedLane.DIRECTORY) && java.nio.file.Files.isWritable(MappedLane.DIRECTORY);
  }

  /** The lanes' files in {@code /dev/shm}: none once the workers have joined. */
  private static List<String> laneFiles() throws IOException {
    if (!sharedMemoryHere()) {
      return List.of();
    }
    try (var files = java.nio.file.Files.list(MappedLane.DIRECTORY)) {
      return files.map(p -> p.getFileName().toString()).filter(n -> n.startsWith("convspark-ring-")).toList();
    }
  }

  @Test
  void everyWorkerGetsTheSumsInTheRingsOrderBitForBitThroughSharedMemoryAndThroughTheStream() throws Exception {
    List<String> before = laneFiles();
    for (Wire.Shaper link : new Wire.Shaper[] {Wire.NONE, Wire.STREAM}) {
      everyWorkerGetsTheSumsInTheRingsOrderBitForBit(link);
    }
    assertEquals(before, laneFiles(), "no lane's file is left in /dev/shm");
  }

  private void everyWorkerGetsTheSumsInTheRingsOrderBitForBit(Wire.Shaper link) throws Exception {
    int[] lengths = {1, 7, RingAllreduce.MIN_CHUNK, 3 * RingAllreduce.MIN_CHUNK + 5, 9 * RingAllreduce.MIN_CHUNK + 123,
        40 * RingAllreduce.MIN_CHUNK + 77};
    for (int size = 2; size <= 5; size++) {
      for (int n : lengths) {
        int sz = size;
        List<float[][]> got = ring(size, all(size, link), (rank, ex) -> {
          // On one host, the floats take shared memory unless the link says otherwise.
          boolean lanes = link.sharesMemory() && sharedMemoryHere();
          assertEquals(lanes ? 2 : 0, ex.toString().split("through shared memory", -1).length - 1, ex.toString());
          float[][] out = new float[2][];
          for (int step = 0; step < 2; step++) {
            float[] data = gradient(rank, step, n);
            double[] stats = {rank + 0.5, step, 10 + rank};
            if (step == 0) {
              ex.allreduce(data, stats);
            } else {
              data = ex.mean(data, stats);
            }
            double counts = 0;
            for (int r = 0; r < sz; r++) {
              counts += 10 + r;
            }
            assertEquals(counts, stats[2], 0.0, "summed count");
            out[step] = data.clone();
          }
          return out;
        });
        for (int step = 0; step < 2; step++) {
          float[][] g = new float[size][];
          double total = 0;
          for (int r = 0; r < size; r++) {
            g[r] = gradient(r, step, n);
            total += 10 + r;
          }
          float[] expected = ringSum(g, step == 0 ? Float.NaN : (float) (1 / total));
          for (int r = 0; r < size; r++) {
            assertArrayEquals(expected, got.get(r)[step], size + " workers, " + n + " floats, step " + step
                + ", worker " + r + ", " + link);
          }
        }
      }
    }
  }

  /**
   * The chunks leave as a backward pass finishes them, from the end down, with pauses: the
   * workers still end with the same means as when the whole array was final at once.
   */
  @Test
  void aStreamedStepGivesTheMeansOfAWholeOne() throws Exception {
    int size = 3;
    int n = 7 * RingAllreduce.MIN_CHUNK + 11;
    List<float[]> got = ring(size, null, (rank, ex) -> {
      float[] data = new float[n];
      SocketExchange.Flow f = ex.start(data, 4, true, false);
      float[] g = gradient(rank, 0, n);
      SplittableRandom pause = new SplittableRandom(rank);
      for (int from = n; from > 0; ) {
        int next = Math.max(0, from - 1 - pause.nextInt(3 * RingAllreduce.MIN_CHUNK));
        System.arraycopy(g, next, data, next, from - next);
        f.accept(next);
        from = next;
        Thread.sleep(pause.nextInt(3));
      }
      double[] stats = {1, 4};
      ex.finish(f, stats);
      assertEquals(12, f.total, 0.0);
      return data;
    });
    float[][] g = new float[size][];
    for (int r = 0; r < size; r++) {
      g[r] = gradient(r, 0, n);
    }
    float[] expected = ringSum(g, (float) (1 / 12.0));
    for (int r = 0; r < size; r++) {
      assertArrayEquals(expected, got.get(r), "worker " + r);
    }
  }

  /** Each worker sends 2 (N - 1) / N of the array a step, whatever N: what makes the ring scale. */
  @Test
  void eachWorkerSendsTwiceTheArrayTimesNMinusOneOverN() throws Exception {
    int n = 48 * RingAllreduce.MIN_CHUNK;
    for (int size : new int[] {2, 3, 4}) {
      AtomicLong[] sent = new AtomicLong[size];
      Wire.Shaper[] shapers = new Wire.Shaper[size];
      for (int r = 0; r < size; r++) {
        AtomicLong count = sent[r] = new AtomicLong();
        shapers[r] = Shapers.outbound(raw -> new FilterOutputStream(raw) {
          @Override
          public void write(byte[] b, int off, int len) throws IOException {
            count.addAndGet(len);
            out.write(b, off, len);
          }

          @Override
          public void write(int b) throws IOException {
            count.incrementAndGet();
            out.write(b);
          }
        });
      }
      ring(size, shapers, (rank, ex) -> {
        sent[rank].set(0);
        ex.allreduce(gradient(rank, 0, n), new double[] {1, 1});
        return null;
      });
      // The floats, plus the length, the counts relayed and the statistics relayed.
      long expected = 2L * (size - 1) * n / size * 4 + 4 + 8L * (size - 1) + 16L * (size - 1);
      for (int r = 0; r < size; r++) {
        assertEquals(expected, sent[r].get(), size + " workers: bytes worker " + r + " sent");
      }
    }
  }

  @Test
  void strangersAreRefusedAndAMissingPredecessorIsNamed() throws Exception {
    try (ServerSocket a = Wire.listen("127.0.0.1"); ServerSocket b = Wire.listen("127.0.0.1")) {
      // A stranger with the wrong secret reaches worker 1 first; the ring forms without it.
      Socket stranger = new Socket("127.0.0.1", b.getLocalPort());
      stranger.setSoTimeout(20_000);
      DataOutputStream d = new DataOutputStream(stranger.getOutputStream());
      d.writeInt(0x43535041);
      d.writeShort(5);
      d.write("wrong".getBytes());
      d.writeInt(0);
      d.flush();
      Future<Integer> refused = pool.submit(() -> {
        try (Socket s = stranger) {
          return s.getInputStream().read();
        }
      });
      ServerSocket[] servers = {a, b};
      List<Future<float[]>> workers = new ArrayList<>();
      for (int r = 0; r < 2; r++) {
        int rank = r;
        workers.add(pool.submit(() -> {
          try (RingAllreduce ex = RingAllreduce.join(rank, 2, servers[rank], "127.0.0.1",
              servers[1 - rank].getLocalPort(), "secret", 20_000, 20_000, () -> false, Wire.NONE)) {
            float[] data = {rank + 1f};
            ex.allreduce(data, new double[] {1});
            return data;
          }
        }));
      }
      for (Future<float[]> w : workers) {
        assertArrayEquals(new float[] {3f}, w.get());
      }
      assertEquals(-1, refused.get(), "the stranger's connection was closed without a reply");
    }
    // Worker 1 of 3 connects to worker 2, but worker 0 (its predecessor) never comes.
    try (ServerSocket one = Wire.listen("127.0.0.1"); ServerSocket two = Wire.listen("127.0.0.1")) {
      IOException e = assertThrows(IOException.class, () -> RingAllreduce.join(1, 3, one, "127.0.0.1",
          two.getLocalPort(), "s", 300, 300, () -> false, Wire.NONE));
      assertTrue(e.getMessage().contains("worker 1 of 3") && e.getMessage().contains("missing ranks 0"), e.getMessage());
    }
  }

  private static final String SPEC = "in784-dense256-relu-dense10";

  /**
   * Three workers with the update sharded (each applies Adam to the chunks it owns, during the
   * exchange, and the parameters are gathered): bit for bit the parameters of applying Adam to
   * the whole mean gradient, and after {@code syncOptimizer} the whole moments, on every worker.
   */
  @Test
  void shardedUpdatesGiveEveryWorkerTheParametersAndMomentsOfTheWholeUpdate() throws Exception {
    int size = 3;
    List<float[][]> got = ring(size, null, (rank, ex) -> {
      try (CpuBackend cpu = CpuBackend.create(1); ModelRunner r = cpu.open(ModelSpec.parse(SPEC))) {
        r.initialize(3);
        Adam adam = (Adam) Optimizer.create("adam", 1e-2f, r.paramCount());
        assertTrue(ex.shardUpdates(true), "every worker keeps its parameters in the heap");
        float[] scratch = new float[r.paramCount()];
        for (int step = 0; step < 3; step++) {
          ex.beginStep(r, adam, 8);
          var result = r.computeGradients(StarAllreduceTest.batch(rank, step), StarAllreduceTest.labels(rank, step), 8, 1f, step);
          double[] stats = {result.lossSum(), 8};
          ex.step(r, adam, scratch, stats, sums -> assertEquals(24, sums[1], 0.0));
        }
        // Each worker keeps the moments of its own chunks only: its share of their memory.
        int n = r.paramCount();
        int per = RingAllreduce.chunk(n, size);
        int chunks = (n + per - 1) / per;
        int owned = 0;
        for (int q = rank; q < chunks; q += size) {
          owned += Math.min(per, n - q * per);
        }
        assertEquals(owned, adam.momentLength(), "worker " + rank + " keeps the moments of its chunks only");
        assertTrue(adam.momentLength() < n / 2, adam.momentLength() + " of " + n);
        ex.syncOptimizer(adam);
        assertEquals(n, adam.momentLength(), "whole again after syncOptimizer");
        return new float[][] {r.hostParameters().clone(), adam.moments()[0].clone(), adam.moments()[1].clone()};
      }
    });
    try (CpuBackend cpu = CpuBackend.create(1)) {
      ModelRunner[] runners = new ModelRunner[size];
      for (int r = 0; r < size; r++) {
        runners[r] = cpu.open(ModelSpec.parse(SPEC));
        runners[r].initialize(3);
      }
      Adam adam = (Adam) Optimizer.create("adam", 1e-2f, runners[0].paramCount());
      for (int step = 0; step < 3; step++) {
        float[][] g = new float[size][];
        for (int r = 0; r < size; r++) {
          runners[r].computeGradients(StarAllreduceTest.batch(r, step), StarAllreduceTest.labels(r, step), 8, 1f, step);
          g[r] = runners[r].hostGradients().clone();
        }
        runners[0].copyGradientsFrom(ringSum(g, (float) (1 / 24.0)));
        runners[0].applyGradients(adam);
        for (int r = 1; r < size; r++) {
          runners[r].copyParametersFrom(runners[0].hostParameters());
        }
      }
      for (int r = 0; r < size; r++) {
        assertArrayEquals(runners[0].hostParameters(), got.get(r)[0], "parameters, worker " + r);
        assertArrayEquals(adam.moments()[0], got.get(r)[1], "first moment, worker " + r);
        assertArrayEquals(adam.moments()[1], got.get(r)[2], "second moment, worker " + r);
      }
      for (ModelRunner r : runners) {
        r.close();
      }
    }
  }
}
