package dev.convspark.ml.exchange;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.DataOutputStream;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import dev.convspark.tensor.backend.CpuBackend;
import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.optim.Optimizer;
import dev.convspark.tensor.spec.ModelSpec;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The gradient exchange over real loopback sockets. */
class StarAllreduceTest {

  @Test
  void threeWorkersGetTheSameSumAndAStrangerIsRefused() throws Exception {
    int size = 3;
    ServerSocket server = Wire.listen("127.0.0.1");
    int port = server.getLocalPort();
    ExecutorService pool = Executors.newFixedThreadPool(size + 1);
    try {
      // A stranger with the wrong secret connects first (before any worker: otherwise the hub may
      // have all its workers, and stop accepting, before it reaches the stranger); the run must not
      // notice.
      Socket strangerSocket = new Socket("127.0.0.1", port);
      strangerSocket.setSoTimeout(20_000);
      DataOutputStream d = new DataOutputStream(strangerSocket.getOutputStream());
      d.writeInt(0x43535041);
      d.writeShort(5);
      d.write("wrong".getBytes());
      d.writeInt(1);
      d.flush();
      Future<?> stranger = pool.submit(() -> {
        try (Socket s = strangerSocket) {
          return s.getInputStream().read();
        }
      });
      List<Future<float[]>> results = new ArrayList<>();
      for (int r = 0; r < size; r++) {
        int rank = r;
        results.add(pool.submit(() -> {
          try (StarAllreduce ex = rank == 0 ? StarAllreduce.hub(server, size, "secret", 20_000)
              : StarAllreduce.spoke(rank, size, "127.0.0.1", port, "secret", 20_000)) {
            float[] data = {rank, 10 * rank, 0.5f};
            double[] stats = {rank, 1};
            for (int step = 0; step < 3; step++) {
              ex.allreduce(data, stats);
            }
            assertEquals(size * 9.0, stats[1], 0.0);
            return data;
          }
        }));
      }
      // Three steps: each sums over ranks 0+1+2 = 3, so values grow by a factor of 3 per step on the sum.
      float[] expected = {3 * 9, 30 * 9, 0.5f * 27};
      for (Future<float[]> f : results) {
        assertArrayEquals(expected, f.get());
      }
      assertEquals(-1, stranger.get(), "the stranger's connection was closed without a reply");
    } finally {
      pool.shutdownNow();
      server.close();
    }
  }

  @Test
  void aMissingWorkerFailsTheHubWithATimeoutNamingIt() throws IOException {
    try (ServerSocket server = Wire.listen("127.0.0.1")) {
      IOException e = assertThrows(IOException.class, () -> StarAllreduce.hub(server, 2, "s", 300));
      assertTrue(e.getMessage().contains("worker 0 of 2") && e.getMessage().contains("missing ranks 1"), e.getMessage());
    }
  }

  /** A worker's half of a two-worker step: its own batch, then {@code step} over the exchange. */
  private static float[] workerStep(StarAllreduce ex, int rank, boolean stop, boolean streamed) throws IOException {
    ModelSpec spec = ModelSpec.parse("in784-dense256-relu-dense10");
    try (CpuBackend cpu = CpuBackend.create(1); ModelRunner r = cpu.open(spec)) {
      r.initialize(3);
      Optimizer adam = Optimizer.create("adam", 1e-2f, r.paramCount());
      for (int step = 0; step < 3; step++) {
        if (streamed) {
          ex.beginStep(r, adam, 8);
        }
        var result = r.computeGradients(batch(rank, step), labels(rank, step), 8, 1f, step);
        double[] stats = {result.lossSum(), 8};
        try {
          ex.step(r, adam, new float[r.paramCount()], stats, summed -> {
            assertEquals(16, summed[1], 0.0);
            if (stop) {
              throw new IllegalStateException("stopped at loss " + summed[0]);
            }
          });
        } catch (IllegalStateException e) {
          assertTrue(stop && e.getMessage().startsWith("stopped at loss"), e.getMessage());
          break;
        }
      }
      return r.hostParameters().clone();
    }
  }

  static float[] batch(int rank, int step) {
    Random g = new Random(31L * rank + step);
    float[] x = new float[8 * 784];
    for (int i = 0; i < x.length; i++) {
      x[i] = (float) g.nextGaussian();
    }
    return x;
  }

  static int[] labels(int rank, int step) {
    int[] y = new int[8];
    for (int i = 0; i < 8; i++) {
      y[i] = (i + rank + step) % 10;
    }
    return y;
  }

  /**
   * Steps streamed from {@code beginStep} (the chunks go out as the backward pass finishes them)
   * and steps sent whole after it: the parameters are bit for bit those of summing both batches'
   * gradients, dividing by the count and applying Adam, on both workers.
   */
  @Test
  void aStepGivesBothWorkersTheParametersOfTheMeanGradient() throws Exception {
    for (boolean streamed : new boolean[] {true, false}) {
      float[][] got = twoWorkers(false, streamed);
      float[] expected = referenceParameters();
      assertArrayEquals(expected, got[0], "streamed " + streamed);
      assertArrayEquals(expected, got[1], "streamed " + streamed);
    }
  }

  private static float[] referenceParameters() {
    ModelSpec spec = ModelSpec.parse("in784-dense256-relu-dense10");
    try (CpuBackend cpu = CpuBackend.create(1); ModelRunner a = cpu.open(spec); ModelRunner b = cpu.open(spec)) {
      a.initialize(3);
      b.initialize(3);
      Optimizer adam = Optimizer.create("adam", 1e-2f, a.paramCount());
      for (int step = 0; step < 3; step++) {
        a.computeGradients(batch(0, step), labels(0, step), 8, 1f, step);
        b.computeGradients(batch(1, step), labels(1, step), 8, 1f, step);
        float[] ga = a.hostGradients();
        float[] gb = b.hostGradients();
        for (int i = 0; i < ga.length; i++) {
          ga[i] = (ga[i] + gb[i]) * (float) (1 / 16.0);
        }
        a.applyGradients(adam);
        b.copyParametersFrom(a.hostParameters());
      }
      return a.hostParameters().clone();
    }
  }

  /** A check that stops the step (both workers see the same sums) leaves every parameter as it was. */
  @Test
  void aStepStoppedByItsCheckChangesNoParameter() throws Exception {
    float[][] got = twoWorkers(true, true);
    try (CpuBackend cpu = CpuBackend.create(1);
         ModelRunner fresh = cpu.open(ModelSpec.parse("in784-dense256-relu-dense10"))) {
      fresh.initialize(3);
      assertArrayEquals(fresh.hostParameters(), got[0]);
      assertArrayEquals(fresh.hostParameters(), got[1]);
    }
  }

  private static float[][] twoWorkers(boolean stop, boolean streamed) throws Exception {
    ServerSocket server = Wire.listen("127.0.0.1");
    int port = server.getLocalPort();
    ExecutorService pool = Executors.newFixedThreadPool(2);
    try {
      List<Future<float[]>> results = new ArrayList<>();
      for (int r = 0; r < 2; r++) {
        int rank = r;
        results.add(pool.submit(() -> {
          try (StarAllreduce ex = rank == 0 ? StarAllreduce.hub(server, 2, "secret", 20_000)
              : StarAllreduce.spoke(rank, 2, "127.0.0.1", port, "secret", 20_000)) {
            return workerStep(ex, rank, stop, streamed);
          }
        }));
      }
      return new float[][] {results.get(0).get(), results.get(1).get()};
    } finally {
      pool.shutdownNow();
      server.close();
    }
  }
}
