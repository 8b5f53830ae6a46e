package dev.convspark.ml;

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
import org.junit.jupiter.api.Test;

/** The gradient exchange over real loopback sockets. */
class StarAllreduceTest {

  @Test
  void threeWorkersGetTheSameSumAndAStrangerIsRefused() throws Exception {
    int size = 3;
    ServerSocket server = StarAllreduce.listen("127.0.0.1");
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
    try (ServerSocket server = StarAllreduce.listen("127.0.0.1")) {
      IOException e = assertThrows(IOException.class, () -> StarAllreduce.hub(server, 2, "s", 300));
      assertTrue(e.getMessage().contains("only 1 of 2 workers") && e.getMessage().contains("missing ranks 1"), e.getMessage());
    }
  }
}
