package dev.convspark.ml.exchange;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.FilterOutputStream;
import java.io.IOException;
import java.net.ServerSocket;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.IntFunction;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The ring's traffic sealed with AES-GCM: the same sums, no gradient on the wire, tampering refused. */
class EncryptionTest {

  private static final int N = 3 * RingAllreduce.MIN_CHUNK + 5;
  private final ExecutorService pool = Executors.newCachedThreadPool();

  @AfterEach
  void stop() {
    pool.shutdownNow();
  }

  private static float[] gradient(int rank) {
    SplittableRandom g = new SplittableRandom(rank + 17);
    float[] x = new float[N];
    for (int i = 0; i < N; i++) {
      x[i] = (float) g.nextGaussian();
    }
    return x;
  }

  /** What every worker sends, as it leaves (below any encryption). */
  private static Wire.Shaper capturing(ByteArrayOutputStream sink) {
    return Shapers.outbound(raw -> new FilterOutputStream(raw) {
      @Override
      public void write(byte[] b, int off, int len) throws IOException {
        synchronized (sink) {
          sink.write(b, off, len);
        }
        out.write(b, off, len);
      }

      @Override
      public void write(int b) throws IOException {
        synchronized (sink) {
          sink.write(b);
        }
        out.write(b);
      }
    });
  }

  /** Three workers' mean over a ring whose worker r's connections go through {@code links.apply(r)}. */
  private List<float[]> ring(IntFunction<Wire.Shaper> links) throws Exception {
    int size = 3;
    ServerSocket[] servers = new ServerSocket[size];
    for (int r = 0; r < size; r++) {
      servers[r] = Wire.listen("127.0.0.1");
    }
    try {
      List<Future<float[]>> futures = new ArrayList<>();
      for (int r = 0; r < size; r++) {
        int rank = r;
        futures.add(pool.submit(() -> {
          try (RingAllreduce ex = RingAllreduce.join(rank, size, servers[rank], "127.0.0.1",
              servers[(rank + 1) % size].getLocalPort(), "run secret", 20_000, 20_000, () -> false,
              links.apply(rank))) {
            return ex.mean(gradient(rank), new double[] {1, 5});
          }
        }));
      }
      List<float[]> out = new ArrayList<>();
      StringBuilder failures = new StringBuilder();
      for (Future<float[]> f : futures) {
        try {
          out.add(f.get());
        } catch (ExecutionException e) {
          failures.append(e.getCause().getMessage()).append('\n');
        }
      }
      if (failures.length() > 0) {
        throw new IOException(failures.toString());
      }
      return out;
    } finally {
      for (ServerSocket s : servers) {
        s.close();
      }
    }
  }

  /** How many pairs of consecutive floats of the workers' gradients appear, as sent, in {@code bytes}. */
  private static int gradientPairsIn(byte[] bytes) {
    Set<Long> pairs = new HashSet<>();
    for (int r = 0; r < 3; r++) {
      ByteBuffer b = ByteBuffer.allocate(N * 4).order(ByteOrder.LITTLE_ENDIAN);
      b.asFloatBuffer().put(gradient(r));
      for (int i = 0; i + 8 <= N * 4; i += 4) {
        pairs.add(b.getLong(i));
      }
    }
    ByteBuffer w = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
    int found = 0;
    for (int i = 0; i + 8 <= bytes.length; i++) {
      found += pairs.contains(w.getLong(i)) ? 1 : 0;
    }
    return found;
  }

  @Test
  void encryptedTheSumsAreTheSameAndNoGradientIsOnTheWire() throws Exception {
    ByteArrayOutputStream clear = new ByteArrayOutputStream();
    List<float[]> plain = ring(r -> capturing(clear));
    ByteArrayOutputStream sealed = new ByteArrayOutputStream();
    List<float[]> encrypted = ring(r -> new Encryption("run secret", r, capturing(sealed)));
    for (int r = 0; r < 3; r++) {
      assertArrayEquals(plain.get(0), encrypted.get(r), "worker " + r);
    }
    // In the clear, the first worker to send a chunk sends its own gradient as it is.
    assertTrue(gradientPairsIn(clear.toByteArray()) > 1000, "the check finds gradients sent in the clear");
    assertTrue(sealed.size() > 2 * N * 4, "bytes sent encrypted: " + sealed.size());
    assertEquals(0, gradientPairsIn(sealed.toByteArray()), "gradient floats in the encrypted traffic");
  }

  @Test
  void aChangedByteOrAPeerWithoutTheKeyStopsTheStepNamingTheWorker() {
    // Worker 1's 5,000th byte out is flipped on the way to worker 2.
    Exception e = org.junit.jupiter.api.Assertions.assertThrows(IOException.class,
        () -> ring(r -> new Encryption("run secret", r, r != 1 ? Wire.NONE : Shapers.outbound(raw -> new FilterOutputStream(raw) {
          private long sent;

          @Override
          public void write(byte[] b, int off, int len) throws IOException {
            byte[] copy = java.util.Arrays.copyOfRange(b, off, off + len);
            if (sent <= 5000 && sent + len > 5000) {
              copy[(int) (5000 - sent)] ^= 1;
            }
            sent += len;
            out.write(copy);
          }
        }))));
    String m = e.getMessage();
    assertTrue(m.contains("a message from worker 1 was refused: a message failed authentication"), m);
    // Worker 0 with another key.
    e = org.junit.jupiter.api.Assertions.assertThrows(IOException.class,
        () -> ring(r -> new Encryption(r == 0 ? "another secret" : "run secret", r, Wire.NONE)));
    m = e.getMessage();
    assertTrue(m.contains("a message from worker 2 was refused: a message failed authentication"), m);
  }
}
