package dev.convspark.ml.exchange;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.Arrays;
import java.util.function.BooleanSupplier;

/**
 * Sums a float array (and a few statistics) across the workers of one training run, over TCP:
 * every worker sends its array to rank 0, which adds them in rank order and sends the sum back,
 * so every worker ends each step with bit-identical sums. Workers connect once and keep the
 * connection for the whole run.
 *
 * <p>Rank 0 listens on its executor's address only; workers connect as {@link Wire} says. Every
 * read has a timeout, so a worker that dies makes the others fail with a message naming it
 * instead of waiting forever.
 *
 * <p>The hub's link carries (N - 1) times the array in each direction a step, so the step time
 * grows with the number N of workers: {@link RingAllreduce} replaced it in training (where
 * {@code bench scaling} shows both). The exchange is pipelined in chunks, and on the CPU it starts
 * while the backward pass is still computing the gradients (see {@link #beginStep}).
 *
 * <p>A step on the wire: each worker sends its array's length and its sample count, then its
 * chunks from the last to the first; the hub returns each chunk summed in rank order (divided by
 * the total count for a mean) as soon as it has every worker's copy; then each worker sends its
 * statistics and the hub returns their sums.
 */
public final class StarAllreduce extends SocketExchange {

  /** Floats per chunk of the pipelined exchange (256 KB). */
  static final int CHUNK = 1 << 16;

  private final Socket[] peers;
  private final DataInputStream[] in;
  private final DataOutputStream[] out;
  // Both ends are this class: little-endian is the fast order on the CPUs Spark runs on.
  private ByteBuffer buf = ByteBuffer.allocate(0).order(ByteOrder.LITTLE_ENDIAN);

  private StarAllreduce(int rank, int size, Socket[] peers, Wire.Shaper shaper) throws IOException {
    super(rank, size);
    this.peers = peers;
    this.in = new DataInputStream[peers.length];
    this.out = new DataOutputStream[peers.length];
    for (int i = 0; i < peers.length; i++) {
      if (peers[i] != null) {
        in[i] = new DataInputStream(new BufferedInputStream(shaper.in(peers[i].getInputStream()), 1 << 16));
        out[i] = new DataOutputStream(new BufferedOutputStream(shaper.out(peers[i].getOutputStream()), 1 << 16));
      }
    }
  }

  /**
   * Rank 0: accepts the other {@code size - 1} workers, refusing connections without the secret.
   *
   * @throws IOException when not every worker arrives within {@code timeoutMs}
   */
  static StarAllreduce hub(ServerSocket server, int size, String secret, int timeoutMs) throws IOException {
    return hub(server, size, secret, timeoutMs, timeoutMs, () -> false, Wire.NONE);
  }

  /**
   * As above, with {@code stepTimeoutMs} for every later read; stops waiting for connections as
   * soon as {@code killed} says the task was killed (Spark kills the other tasks of a barrier stage
   * when one fails, without interrupting them).
   */
  public static StarAllreduce hub(ServerSocket server, int size, String secret, int timeoutMs, int stepTimeoutMs,
                                  BooleanSupplier killed, Wire.Shaper shaper) throws IOException {
    boolean[] wanted = new boolean[size];
    Arrays.fill(wanted, 1, size, true);
    Socket[] peers = Wire.accept(server, wanted, secret, timeoutMs, stepTimeoutMs, killed, 0);
    try {
      return new StarAllreduce(0, size, peers, shaper);
    } catch (IOException e) {
      Wire.closeAll(peers);
      throw e;
    }
  }

  /** A worker of rank {@code rank >= 1}: connects to the hub at {@code host:port}. */
  static StarAllreduce spoke(int rank, int size, String host, int port, String secret, int timeoutMs) throws IOException {
    return spoke(rank, size, host, port, secret, timeoutMs, Wire.NONE);
  }

  /** As above, its connection through {@code shaper}. */
  public static StarAllreduce spoke(int rank, int size, String host, int port, String secret, int timeoutMs,
                                    Wire.Shaper shaper) throws IOException {
    Socket s = Wire.connect(rank, host, port, secret, timeoutMs, "worker 0");
    try {
      return new StarAllreduce(rank, size, new Socket[] {s}, shaper);
    } catch (IOException e) {
      s.close();
      throw e;
    }
  }

  @Override
  public String[] gather(String mine, int timeoutMs) throws IOException {
    String[] all = new String[size];
    if (size == 1) {
      all[0] = mine;
      return all;
    }
    int stepTimeout = 0;
    for (Socket p : peers) {
      if (p != null) {
        stepTimeout = p.getSoTimeout();
        p.setSoTimeout(timeoutMs);
      }
    }
    try {
      return gatherStrings(mine, all);
    } finally {
      for (Socket p : peers) {
        if (p != null) {
          p.setSoTimeout(stepTimeout);
        }
      }
    }
  }

  private String[] gatherStrings(String mine, String[] all) throws IOException {
    if (rank == 0) {
      all[0] = mine;
      for (int r = 1; r < size; r++) {
        try {
          all[r] = in[r].readUTF();
        } catch (IOException e) {
          throw Wire.silent(r, e);
        }
      }
      for (int r = 1; r < size; r++) {
        for (String a : all) {
          out[r].writeUTF(a);
        }
        out[r].flush();
      }
      return all;
    }
    try {
      out[0].writeUTF(mine);
      out[0].flush();
      for (int r = 0; r < size; r++) {
        all[r] = in[0].readUTF();
      }
    } catch (IOException e) {
      throw Wire.silent(0, e);
    }
    return all;
  }

  /**
   * The hub's reducer, or a worker's sender and receiver, on threads of their own. A worker's
   * sender streams its array while its receiver reads the summed chunks coming back, and the hub
   * returns each chunk as soon as every worker's copy of it has arrived, so sending, summing and
   * returning overlap instead of following one another.
   */
  @Override
  Flow start(float[] data, double count, boolean mean, boolean ready) {
    Flow f = new Flow(data, count, mean, ready);
    f.tasks = rank == 0 ? new java.util.concurrent.Future<?>[] {submit(() -> reduce(f))}
        : new java.util.concurrent.Future<?>[] {submit(() -> send(f)), submit(() -> receive(f))};
    return f;
  }

  /** The hub's reducer: every worker's count, then each chunk summed in rank order and returned. */
  private Void reduce(Flow s) throws IOException, InterruptedException {
    int n = s.data.length;
    double total = s.count;
    for (int r = 1; r < size; r++) {
      try {
        int got = in[r].readInt();
        if (got != n) {
          throw new IOException("expected " + n + " floats but the peer sent " + got);
        }
        total += in[r].readDouble();
      } catch (IOException e) {
        throw Wire.silent(r, e);
      }
    }
    s.total = total;
    float inv = (float) (1 / total);
    ByteBuffer b = buffer(CHUNK);
    for (int off = (n - 1) / CHUNK * CHUNK; off >= 0; off -= CHUNK) {
      int len = Math.min(CHUNK, n - off);
      s.awaitReady(off);
      for (int r = 1; r < size; r++) {
        try {
          in[r].readFully(b.array(), 0, len * 4);
        } catch (IOException e) {
          throw Wire.silent(r, e);
        }
        FloatBuffer f = b.asFloatBuffer();
        for (int i = 0; i < len; i++) {
          s.data[off + i] += f.get(i);
        }
      }
      if (s.mean) {
        for (int i = off; i < off + len; i++) {
          s.data[i] *= inv;
        }
      }
      b.clear();
      b.asFloatBuffer().put(s.data, off, len);
      for (int r = 1; r < size; r++) {
        out[r].write(b.array(), 0, len * 4);
        out[r].flush();
      }
    }
    return null;
  }

  /** A worker's sender: its count, then each chunk as it becomes final, last first. */
  private Void send(Flow s) throws IOException, InterruptedException {
    int n = s.data.length;
    ByteBuffer b = ByteBuffer.allocate(CHUNK * 4).order(ByteOrder.LITTLE_ENDIAN);
    DataOutputStream d = out[0];
    d.writeInt(n);
    d.writeDouble(s.count);
    d.flush();
    for (int off = (n - 1) / CHUNK * CHUNK; off >= 0; off -= CHUNK) {
      int len = Math.min(CHUNK, n - off);
      s.awaitReady(off);
      b.clear();
      b.asFloatBuffer().put(s.data, off, len);
      d.write(b.array(), 0, len * 4);
      d.flush();
    }
    return null;
  }

  /** A worker's receiver: each summed chunk, in the order sent. */
  private Void receive(Flow s) throws IOException {
    int n = s.data.length;
    // A chunk comes back only after the hub has read it, so the sender is done with it by then.
    ByteBuffer b = ByteBuffer.allocate(CHUNK * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (int off = (n - 1) / CHUNK * CHUNK; off >= 0; off -= CHUNK) {
      int len = Math.min(CHUNK, n - off);
      try {
        in[0].readFully(b.array(), 0, len * 4);
      } catch (IOException e) {
        throw Wire.silent(0, e);
      }
      b.asFloatBuffer().get(s.data, off, len);
    }
    return null;
  }

  /**
   * Waits for {@code s}'s array, then sums {@code stats} over the workers in rank order (the hub
   * adds them up and sends the sums back).
   */
  @Override
  void finish(Flow s, double[] stats) throws IOException {
    if (rank == 0) {
      await(s.tasks[0]);
      double[][] all = new double[size][];
      all[0] = stats.clone();
      for (int r = 1; r < size; r++) {
        all[r] = new double[stats.length];
        try {
          for (int i = 0; i < stats.length; i++) {
            all[r][i] = in[r].readDouble();
          }
        } catch (IOException e) {
          throw Wire.silent(r, e);
        }
      }
      sumInRankOrder(all, stats);
      for (int r = 1; r < size; r++) {
        for (double v : stats) {
          out[r].writeDouble(v);
        }
        out[r].flush();
      }
      return;
    }
    await(s.tasks[0]);
    try {
      for (double v : stats) {
        out[0].writeDouble(v);
      }
      out[0].flush();
      await(s.tasks[1]);
      for (int i = 0; i < stats.length; i++) {
        stats[i] = in[0].readDouble();
      }
    } catch (IOException e) {
      throw Wire.silent(0, e);
    }
    // The hub checked the count; a worker takes it from the sums.
    s.total = stats[stats.length - 1];
  }

  private ByteBuffer buffer(int floats) {
    if (buf.capacity() < floats * 4) {
      buf = ByteBuffer.allocate(floats * 4).order(ByteOrder.LITTLE_ENDIAN);
    }
    buf.clear();
    return buf;
  }

  @Override
  public void close() throws IOException {
    stopHelpers();
    Wire.closeAll(peers);
  }

  @Override
  public String toString() {
    return "StarAllreduce(rank " + rank + " of " + size + ", " + Arrays.toString(peers) + ")";
  }
}
