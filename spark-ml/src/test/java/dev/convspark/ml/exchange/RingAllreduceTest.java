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

  /**
   * Chunks of {@link RingAllreduce#chunk} floats from the end, but the largest dense layer's
   * weights begin and end chunks of their own.
   */
  @Test
  void theLargestDenseLayersWeightsBeginAndEndChunks() {
    int n = 3_274_634;
    int per = RingAllreduce.chunk(n, 2);
    int[] plain = RingFlow.bounds(n, 2, null);
    assertEquals(n, plain[0]);
    assertEquals(0, plain[plain.length - 1]);
    for (int q = 0; q + 2 < plain.length; q++) {
      assertEquals(per, plain[q] - plain[q + 1], "chunk " + q);
    }
    // deep-mnist: conv1 and conv2 (52,096 floats), dense1's weights, then its bias and dense2.
    int[] b = RingFlow.bounds(n, 2, new ModelRunner.DenseWeights(52_096, 3136, 1024));
    int to = 52_096 + 3136 * 1024;
    assertEquals(java.util.List.of(n, to), List.of(b[0], b[1]), "the top layers' chunk");
    assertEquals(java.util.List.of(52_096, 0), List.of(b[b.length - 2], b[b.length - 1]), "the first layers' chunk");
    for (int q = 1; q + 2 < b.length; q++) {
      assertTrue(b[q] - b[q + 1] == per || b[q + 1] == 52_096, "chunk " + q + ": " + b[q + 1] + " to " + b[q]);
    }
    assertEquals(0, RingFlow.bounds(0, 3, null)[1]);
  }

  /** Links that count the bytes each worker sends into {@code sent} (one counter made per worker). */
  private static Wire.Shaper[] counting(AtomicLong[] sent) {
    Wire.Shaper[] shapers = new Wire.Shaper[sent.length];
    for (int r = 0; r < sent.length; r++) {
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
    return shapers;
  }

  /** Each worker sends 2 (N - 1) / N of the array a step, whatever N: what makes the ring scale. */
  @Test
  void eachWorkerSendsTwiceTheArrayTimesNMinusOneOverN() throws Exception {
    int n = 48 * RingAllreduce.MIN_CHUNK;
    for (int size : new int[] {2, 3, 4}) {
      AtomicLong[] sent = new AtomicLong[size];
      Wire.Shaper[] shapers = counting(sent);
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

  /** Where the first dense layer's weights of {@link #SPEC} end: they start at 0. */
  private static final int DENSE1 = 784 * 256;

  /**
   * Workers with the update sharded (each applies the optimizer to the chunks it owns, during the
   * exchange, and the parameters are gathered), through shared memory and through the stream: the
   * same bits on every worker, the parameters of applying the optimizer to the whole mean gradient
   * and, after {@code syncOptimizer}, Adam's whole moments. At batches this small the first dense
   * layer's weight gradient travels as its factors and its owners multiply them, summing all
   * samples at once where the ring adds each worker's product (exact in
   * {@link #aStreamedStepGivesTheMeansOfAWholeOne}): within float rounding of the ring's sums, as
   * SGD's parameters show; Adam divides each gradient by its own size, so a gradient near zero
   * moves its parameter by up to a few thousandths of a step more.
   */
  @Test
  void shardedUpdatesGiveEveryWorkerTheParametersAndMomentsOfTheWholeUpdate() throws Exception {
    for (int size : new int[] {2, 3}) {
      for (Wire.Shaper link : new Wire.Shaper[] {Wire.NONE, Wire.STREAM}) {
        shardedUpdates(SPEC, size, link, "adam");
        // Convolutions first: their gradients are the tail, which every worker sums (in more than
        // one piece through the stream) and updates.
        shardedUpdates(CONV_SPEC, size, link, "adam");
      }
    }
    shardedUpdates(SPEC, 3, Wire.NONE, "sgd");
    shardedUpdates(CONV_SPEC, 3, Wire.NONE, "sgd");
  }

  /** Two convolutions before the dense layers: their 4,952 gradients are a sharded flow's tail. */
  private static final String CONV_SPEC = "in28x28x1-conv5x5x4-relu-pool2-conv5x5x48-relu-pool2-dense64-relu-dense10";

  private void shardedUpdates(String spec, int size, Wire.Shaper link, String optimizer) throws Exception {
    String what = spec + ", " + size + " workers, " + (link == Wire.NONE ? "shared memory" : "stream") + ", "
        + optimizer;
    float rate = 1e-2f;
    List<float[][]> got = ring(size, all(size, link), (rank, ex) -> {
      try (CpuBackend cpu = CpuBackend.create(1); ModelRunner r = cpu.open(ModelSpec.parse(spec))) {
        r.initialize(3);
        Optimizer opt = Optimizer.create(optimizer, rate, r.paramCount());
        assertTrue(ex.shardUpdates(true), "every worker keeps its parameters in the heap");
        float[] scratch = new float[r.paramCount()];
        for (int step = 0; step < 3; step++) {
          ex.beginStep(r, opt, 8);
          var result = r.computeGradients(StarAllreduceTest.batch(rank, step), StarAllreduceTest.labels(rank, step), 8, 1f, step);
          double[] stats = {result.lossSum(), 8};
          ex.step(r, opt, scratch, stats, sums -> assertEquals(8 * size, sums[1], 0.0));
        }
        if (!(opt instanceof Adam adam)) {
          return new float[][] {r.hostParameters().clone()};
        }
        // Each worker keeps the moments of its own chunks only, and the tail's: its share of their memory.
        int n = r.paramCount();
        int[] bounds = RingFlow.bounds(n, size, r.largestDense());
        int tail = RingFlow.tail(bounds, size, true, r.largestDense());
        assertEquals(spec.equals(CONV_SPEC) ? 4952 : 0, tail, "the tail of " + spec);
        int owned = tail;
        for (int q = rank; q + 1 < bounds.length - (tail > 0 ? 1 : 0); q += size) {
          owned += bounds[q] - bounds[q + 1];
        }
        assertEquals(owned, adam.momentLength(), "worker " + rank + " keeps the moments of its chunks only");
        assertTrue(adam.momentLength() < n / 2 + RingAllreduce.chunk(n, size), adam.momentLength() + " of " + n);
        ex.syncOptimizer(adam);
        assertEquals(n, adam.momentLength(), "whole again after syncOptimizer");
        return new float[][] {r.hostParameters().clone(), adam.moments()[0].clone(), adam.moments()[1].clone()};
      }
    });
    try (CpuBackend cpu = CpuBackend.create(1)) {
      ModelRunner[] runners = new ModelRunner[size];
      for (int r = 0; r < size; r++) {
        runners[r] = cpu.open(ModelSpec.parse(spec));
        runners[r].initialize(3);
      }
      Optimizer opt = Optimizer.create(optimizer, rate, runners[0].paramCount());
      for (int step = 0; step < 3; step++) {
        float[][] g = new float[size][];
        for (int r = 0; r < size; r++) {
          runners[r].computeGradients(StarAllreduceTest.batch(r, step), StarAllreduceTest.labels(r, step), 8, 1f, step);
          g[r] = runners[r].hostGradients().clone();
        }
        runners[0].copyGradientsFrom(ringSum(g, (float) (1.0 / (8 * size))));
        runners[0].applyGradients(opt);
        for (int r = 1; r < size; r++) {
          runners[r].copyParametersFrom(runners[0].hostParameters());
        }
      }
      float[][] expected = opt instanceof Adam adam
          ? new float[][] {runners[0].hostParameters(), adam.moments()[0], adam.moments()[1]}
          : new float[][] {runners[0].hostParameters()};
      String[] names = {"parameters", "first moment", "second moment"};
      for (int r = 0; r < size; r++) {
        for (int a = 0; a < expected.length; a++) {
          assertArrayEquals(got.get(0)[a], got.get(r)[a], names[a] + ": worker " + r + " against worker 0, " + what);
          float[] e = expected[a];
          float[] x = got.get(r)[a];
          float scale = 0;
          for (float v : e) {
            scale = Math.max(scale, Math.abs(v));
          }
          float tolerance = a == 0 && opt instanceof Adam ? 5e-3f * rate : 1e-5f * scale;
          for (int i = 0; i < e.length; i++) {
            if (Math.abs(e[i] - x[i]) > tolerance) {
              assertEquals(e[i], x[i], tolerance, names[a] + " " + i + ", " + what);
            }
          }
        }
      }
      for (ModelRunner r : runners) {
        r.close();
      }
    }
  }

  /**
   * A factored step's bytes: the first dense layer's gradient does not travel; each worker's
   * factors (its 8 samples' inputs and output gradients) go round the ring instead, and the rest
   * of the gradient and all the parameters as before.
   */
  @Test
  void aFactoredStepSendsTheFactorsInsteadOfTheDenseGradient() throws Exception {
    for (int size : new int[] {2, 3}) {
      AtomicLong[] sent = new AtomicLong[size];
      Wire.Shaper[] shapers = counting(sent);
      int[][] bounds = new int[1][];
      ring(size, shapers, (rank, ex) -> {
        try (CpuBackend cpu = CpuBackend.create(1); ModelRunner r = cpu.open(ModelSpec.parse(SPEC))) {
          r.initialize(3);
          bounds[0] = RingFlow.bounds(r.paramCount(), size, r.largestDense());
          Adam adam = (Adam) Optimizer.create("adam", 1e-2f, r.paramCount());
          assertTrue(ex.shardUpdates(true));
          sent[rank].set(0);
          ex.beginStep(r, adam, 8);
          var result = r.computeGradients(StarAllreduceTest.batch(rank, 0), StarAllreduceTest.labels(rank, 0), 8, 1f, 0);
          ex.step(r, adam, new float[r.paramCount()], new double[] {result.lossSum(), 8}, sums -> { });
          return null;
        }
      });
      int[] b = bounds[0];
      int n = b[0];
      for (int r = 0; r < size; r++) {
        long floats = 0;
        for (int q = 0; q + 1 < b.length; q++) {
          int from = b[q + 1];
          int to = b[q];
          int owner = q % size;
          if (r != owner) {
            // Its partial sum, outside the first dense layer's weights.
            floats += Math.max(0, to - Math.max(from, DENSE1));
          }
          if ((r + 1) % size != owner) {
            // The parameters, all of them.
            floats += to - from;
          }
        }
        // Every worker's factors but its successor's, 8 samples of 784 inputs and 256 gradients.
        floats += (size - 1) * 8L * (784 + 256);
        long expected = floats * 4 + 4 + 8L * (size - 1) + 16L * (size - 1);
        assertEquals(expected, sent[r].get(), size + " workers: bytes worker " + r + " sent");
        long ring = 2L * (size - 1) * n / size * 4;
        assertTrue(sent[r].get() < 0.65 * ring, sent[r].get() + " bytes against " + ring + " without factors");
      }
    }
  }

  /**
   * Runners whose gradients are not in the heap (a GPU's): at small batches the first dense layer's
   * weight gradient does not travel, the workers' samples' rows do (10 samples of 784 inputs and
   * 256 output gradients against 200,704 weights), and the parameters are those of sending the
   * gradient, within float rounding (the product over all samples at once where the ring adds
   * one per worker; Adam moves a weight whose gradient is near zero by up to a few thousandths of a
   * step more), the same bit for bit on every worker. At large batches (300 samples: more floats
   * than the weights) the gradient travels as before, factors offered or not. A worker with no
   * samples adds zeros either way.
   */
  @Test
  void runnersOffTheHeapSendTheFactorsAtSmallBatchesAndTheGradientAtLargeOnes() throws Exception {
    for (int[] counts : new int[][] {{6, 0, 4}, {200, 0, 100}}) {
      int size = counts.length;
      long[][] bytes = new long[2][];
      List<List<float[]>> params = new ArrayList<>();
      for (boolean factors : new boolean[] {true, false}) {
        AtomicLong[] sent = new AtomicLong[size];
        params.add(ring(size, counting(sent), (rank, ex) -> OffHeapRunner.steps(ex, rank, counts, factors, SPEC)));
        bytes[factors ? 0 : 1] = java.util.Arrays.stream(sent).mapToLong(AtomicLong::get).toArray();
      }
      String what = java.util.Arrays.toString(counts) + " samples";
      for (int r = 0; r < size; r++) {
        for (int f = 0; f < 2; f++) {
          assertArrayEquals(params.get(f).get(0), params.get(f).get(r), "worker " + r + " against worker 0, " + what);
        }
        float[] e = params.get(1).get(r);
        float[] x = params.get(0).get(r);
        for (int i = 0; i < e.length; i++) {
          if (Math.abs(e[i] - x[i]) > 5e-3f * 1e-2f) {
            assertEquals(e[i], x[i], 5e-3f * 1e-2f, "parameter " + i + " with factors against without, " + what);
          }
        }
        if (counts[0] < 100) {
          assertTrue(bytes[0][r] < 0.15 * bytes[1][r], what + ": worker " + r + " sent " + bytes[0][r]
              + " bytes with factors, " + bytes[1][r] + " without");
        } else {
          assertEquals(bytes[1][r], bytes[0][r], what + ": worker " + r + "'s bytes with factors offered");
        }
      }
    }
  }

  /**
   * A run whose workers are not all on GPUs ({@code device=auto} where one executor has none): the
   * worker whose gradients are in the heap streams them as the CPU's do, so the one on a GPU sends
   * its gradient whole too, and both end with the same parameters, those of two workers on the CPU.
   */
  @Test
  void aWorkerOnTheCpuAndOneOffTheHeapStillSumTheWholeGradient() throws Exception {
    int[] counts = {6, 4};
    List<float[]> mixed = ring(2, null, (rank, ex) -> OffHeapRunner.steps(ex, rank, counts, true, SPEC, rank == 0));
    List<float[]> cpu = ring(2, null, (rank, ex) -> OffHeapRunner.steps(ex, rank, counts, true, SPEC, false));
    assertArrayEquals(mixed.get(0), mixed.get(1), "the two workers' parameters");
    float[] e = cpu.get(0);
    for (int i = 0; i < e.length; i++) {
      if (Math.abs(e[i] - mixed.get(0)[i]) > 5e-3f * 1e-2f) {
        assertEquals(e[i], mixed.get(0)[i], 5e-3f * 1e-2f, "parameter " + i + " against two workers on the CPU");
      }
    }
  }
}
