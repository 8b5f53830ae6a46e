package dev.convspark.ml;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.Arrays;

/**
 * Sums a float array (and a few statistics) across the workers of one training run, over TCP:
 * every worker sends its array to rank 0, which adds them in rank order and sends the sum back,
 * so every worker ends each step with bit-identical sums. Workers connect once and keep the
 * connection for the whole run.
 *
 * <p>Rank 0 listens on its executor's address only. A connection must open with the run's secret
 * (shared through Spark's barrier {@code allGather}) and its rank; anything else is closed after
 * that handshake and does not disturb the run. Every read has a timeout, so a worker that dies
 * makes the others fail with a message naming it instead of waiting forever.
 *
 * <p>A star, not a ring: with the few workers of a CPU cluster the hub's bandwidth is not the
 * limit, and a fixed summation order makes the result independent of timing. The exchange is
 * pipelined in chunks (see {@link #allreduce}).
 */
final class StarAllreduce implements GradientExchange {

  private static final int MAGIC = 0x43535041; // "CSPA"

  private final int rank;
  private final int size;
  private final Socket[] peers;
  private final DataInputStream[] in;
  private final DataOutputStream[] out;
  // Both ends are this class: little-endian is the fast order on the CPUs Spark runs on.
  private ByteBuffer buf = ByteBuffer.allocate(0).order(ByteOrder.LITTLE_ENDIAN);

  private StarAllreduce(int rank, int size, Socket[] peers) throws IOException {
    this.rank = rank;
    this.size = size;
    this.peers = peers;
    this.in = new DataInputStream[peers.length];
    this.out = new DataOutputStream[peers.length];
    for (int i = 0; i < peers.length; i++) {
      if (peers[i] != null) {
        in[i] = new DataInputStream(new BufferedInputStream(peers[i].getInputStream(), 1 << 16));
        out[i] = new DataOutputStream(new BufferedOutputStream(peers[i].getOutputStream(), 1 << 16));
      }
    }
  }

  /** Rank 0's listening socket, bound to {@code host} (the executor's address) on a free port. */
  static ServerSocket listen(String host) throws IOException {
    ServerSocket s = new ServerSocket();
    s.bind(new InetSocketAddress(InetAddress.getByName(host), 0), 64);
    return s;
  }

  /**
   * Rank 0: accepts the other {@code size - 1} workers, refusing connections without the secret.
   *
   * @throws IOException when not every worker arrives within {@code timeoutMs}
   */
  static StarAllreduce hub(ServerSocket server, int size, String secret, int timeoutMs) throws IOException {
    return hub(server, size, secret, timeoutMs, timeoutMs, () -> false);
  }

  /**
   * As above, with {@code stepTimeoutMs} for every later read; stops waiting for connections as
   * soon as {@code killed} says the task was killed (Spark kills the other tasks of a barrier stage
   * when one fails, without interrupting them).
   */
  static StarAllreduce hub(ServerSocket server, int size, String secret, int timeoutMs, int stepTimeoutMs,
                           java.util.function.BooleanSupplier killed) throws IOException {
    Socket[] peers = new Socket[size];
    long deadline = System.currentTimeMillis() + timeoutMs;
    int arrived = 1;
    try {
      while (arrived < size) {
        long left = deadline - System.currentTimeMillis();
        if (left <= 0) {
          throw new IOException("gradient exchange: only " + arrived + " of " + size + " workers connected within "
              + timeoutMs / 1000 + " s; missing ranks " + missing(peers));
        }
        if (killed.getAsBoolean()) {
          throw new IOException("gradient exchange: worker 0's task was killed while waiting for ranks " + missing(peers));
        }
        server.setSoTimeout((int) Math.min(left, 1000));
        Socket s;
        try {
          s = server.accept();
        } catch (SocketTimeoutException e) {
          continue;
        }
        s.setSoTimeout(Math.min(timeoutMs, 10_000));
        s.setTcpNoDelay(true);
        int peerRank = handshake(s, secret, size);
        if (peerRank < 1 || peers[peerRank] != null) {
          s.close();
          continue;
        }
        s.setSoTimeout(stepTimeoutMs);
        peers[peerRank] = s;
        arrived++;
      }
      return new StarAllreduce(0, size, peers);
    } catch (IOException e) {
      for (Socket s : peers) {
        if (s != null) {
          s.close();
        }
      }
      throw e;
    }
  }

  /** Reads a handshake; returns the peer's rank, or -1 when it is not one of this run's workers. */
  private static int handshake(Socket s, String secret, int size) {
    try {
      DataInputStream d = new DataInputStream(s.getInputStream());
      if (d.readInt() != MAGIC) {
        return -1;
      }
      int len = d.readUnsignedShort();
      if (len > 256) {
        return -1;
      }
      byte[] b = new byte[len];
      d.readFully(b);
      int peerRank = d.readInt();
      boolean ok = java.security.MessageDigest.isEqual(b, secret.getBytes(java.nio.charset.StandardCharsets.UTF_8));
      return ok && peerRank > 0 && peerRank < size ? peerRank : -1;
    } catch (IOException e) {
      return -1;
    }
  }

  private static String missing(Socket[] peers) {
    StringBuilder b = new StringBuilder();
    for (int i = 1; i < peers.length; i++) {
      if (peers[i] == null) {
        b.append(b.length() == 0 ? "" : ", ").append(i);
      }
    }
    return b.toString();
  }

  /** A worker of rank {@code rank >= 1}: connects to the hub at {@code host:port}. */
  static StarAllreduce spoke(int rank, int size, String host, int port, String secret, int timeoutMs) throws IOException {
    Socket s = new Socket();
    try {
      s.connect(new InetSocketAddress(host, port), timeoutMs);
      s.setSoTimeout(timeoutMs);
      s.setTcpNoDelay(true);
      DataOutputStream d = new DataOutputStream(s.getOutputStream());
      byte[] b = secret.getBytes(java.nio.charset.StandardCharsets.UTF_8);
      d.writeInt(MAGIC);
      d.writeShort(b.length);
      d.write(b);
      d.writeInt(rank);
      d.flush();
    } catch (IOException e) {
      s.close();
      throw new IOException("gradient exchange: worker " + rank + " could not reach worker 0 at " + host + ":" + port
          + ": " + e.getMessage(), e);
    }
    Socket[] peers = new Socket[1];
    peers[0] = s;
    return new StarAllreduce(rank, size, peers);
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
          throw new IOException("gradient exchange: worker " + r + " failed or stopped answering: " + why(e), e);
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
      throw new IOException("gradient exchange: worker 0 failed or stopped answering: " + why(e), e);
    }
    return all;
  }

  /**
   * A lone worker scales its gradients where they are ({@link GradientExchange#alone}). Workers
   * keeping their parameters and gradients in this JVM's heap (the CPU) apply the update chunk by
   * chunk as the mean arrives, while the rest is still on the way: Adam's pass over 13 MB then
   * overlaps the transfer instead of following it, with the same result (each parameter's update
   * reads only its own gradient and moments). Others copy the gradients out and back
   * ({@link GradientExchange#step}).
   */
  @Override
  public void step(dev.convspark.tensor.backend.ModelRunner runner, dev.convspark.tensor.optim.Optimizer optimizer,
                   float[] scratch, double[] stats, java.util.function.Consumer<double[]> check) throws IOException {
    float[] grads = runner.hostGradients();
    float[] params = runner.hostParameters();
    if (size == 1) {
      GradientExchange.alone(runner, optimizer, stats, check);
    } else if (grads == null || params == null) {
      GradientExchange.super.step(runner, optimizer, scratch, stats, check);
    } else {
      exchange(grads, stats, true, summed -> {
        check.accept(summed);
        optimizer.beginStep();
      }, (from, to) -> optimizer.update(params, grads, from, to));
    }
  }

  /** Floats per chunk of the pipelined exchange (256 KB). */
  static final int CHUNK = 1 << 16;

  /** What a worker does with each chunk of the sums as it gets it: {@code data[from, to)}. */
  private interface ChunkDone {
    void accept(int from, int to);
  }

  private static final ChunkDone NOTHING = (from, to) -> { };

  /**
   * Replaces {@code data} and {@code stats} with their sums over all workers. Pipelined in chunks:
   * a worker's sender streams its array while it reads the summed chunks coming back, and the hub
   * returns each chunk as soon as every worker's copy of it has arrived, so sending, summing and
   * returning overlap instead of following one another.
   */
  @Override
  public void allreduce(float[] data, double[] stats) throws IOException {
    exchange(data, stats, false, summed -> { }, NOTHING);
  }

  /**
   * The hub divides each summed chunk by the count before returning it (the counts travel first),
   * so no worker makes a pass of its own over the sums: the same products as dividing after.
   */
  @Override
  public float[] mean(float[] grads, double[] stats) throws IOException {
    if (size == 1) {
      return GradientExchange.divideByCount(grads, stats);
    }
    exchange(grads, stats, true, summed -> { }, NOTHING);
    return grads;
  }

  /**
   * The exchange: each worker's statistics and array to the hub, the summed statistics back to
   * every worker first, shown to {@code summed} (which may throw to stop: every worker sees the
   * same sums, so all stop there), then the summed (with {@code mean}, divided) array chunk by
   * chunk, each handed to {@code done} as soon as this worker has it.
   */
  private void exchange(float[] data, double[] stats, boolean mean, java.util.function.Consumer<double[]> summed,
                        ChunkDone done) throws IOException {
    if (size == 1) {
      return;
    }
    int n = data.length;
    if (rank == 0) {
      double[] st = new double[stats.length];
      for (int r = 1; r < size; r++) {
        try {
          readHeader(in[r], n, st);
        } catch (IOException e) {
          throw new IOException("gradient exchange: worker " + r + " failed or stopped answering: " + why(e), e);
        }
        for (int i = 0; i < stats.length; i++) {
          stats[i] += st[i];
        }
      }
      for (int r = 1; r < size; r++) {
        for (double v : stats) {
          out[r].writeDouble(v);
        }
        out[r].flush();
      }
      summed.accept(stats);
      float inv = (float) (1 / stats[stats.length - 1]);
      ByteBuffer b = buffer(CHUNK);
      for (int off = 0; off < n; off += CHUNK) {
        int len = Math.min(CHUNK, n - off);
        for (int r = 1; r < size; r++) {
          try {
            in[r].readFully(b.array(), 0, len * 4);
          } catch (IOException e) {
            throw new IOException("gradient exchange: worker " + r + " failed or stopped answering: " + why(e), e);
          }
          FloatBuffer f = b.asFloatBuffer();
          for (int i = 0; i < len; i++) {
            data[off + i] += f.get(i);
          }
        }
        if (mean) {
          for (int i = off; i < off + len; i++) {
            data[i] *= inv;
          }
        }
        b.clear();
        b.asFloatBuffer().put(data, off, len);
        for (int r = 1; r < size; r++) {
          out[r].write(b.array(), 0, len * 4);
          out[r].flush();
        }
        done.accept(off, off + len);
      }
      return;
    }
    java.util.concurrent.Future<?> sending = sender().submit(() -> {
      ByteBuffer b = ByteBuffer.allocate(CHUNK * 4).order(ByteOrder.LITTLE_ENDIAN);
      DataOutputStream d = out[0];
      d.writeInt(n);
      for (double v : stats) {
        d.writeDouble(v);
      }
      for (int off = 0; off < n; off += CHUNK) {
        int len = Math.min(CHUNK, n - off);
        b.clear();
        b.asFloatBuffer().put(data, off, len);
        d.write(b.array(), 0, len * 4);
      }
      d.flush();
      return null;
    });
    boolean finished = false;
    try {
      // The sums come back only after the hub has read every worker's statistics, and a chunk
      // only after the hub has read it, so the sender is done with each by then.
      for (int i = 0; i < stats.length; i++) {
        stats[i] = in[0].readDouble();
      }
      summed.accept(stats);
      ByteBuffer b = buffer(CHUNK);
      for (int off = 0; off < n; off += CHUNK) {
        int len = Math.min(CHUNK, n - off);
        in[0].readFully(b.array(), 0, len * 4);
        b.asFloatBuffer().get(data, off, len);
        done.accept(off, off + len);
      }
      sending.get();
      finished = true;
    } catch (IOException e) {
      throw new IOException("gradient exchange: worker 0 failed or stopped answering: " + why(e), e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("gradient exchange interrupted", e);
    } catch (java.util.concurrent.ExecutionException e) {
      throw new IOException("gradient exchange: sending to worker 0 failed: " + e.getCause().getMessage(), e.getCause());
    } finally {
      if (!finished) {
        sending.cancel(true);
      }
    }
  }

  private java.util.concurrent.ExecutorService sender;

  private java.util.concurrent.ExecutorService sender() {
    if (sender == null) {
      sender = java.util.concurrent.Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "convspark-gradient-sender-" + rank);
        t.setDaemon(true);
        return t;
      });
    }
    return sender;
  }

  private static void readHeader(DataInputStream d, int n, double[] stats) throws IOException {
    int got = d.readInt();
    if (got != n) {
      throw new IOException("expected " + n + " floats but the peer sent " + got);
    }
    for (int i = 0; i < stats.length; i++) {
      stats[i] = d.readDouble();
    }
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
    if (sender != null) {
      sender.shutdownNow();
    }
    IOException first = null;
    for (Socket s : peers) {
      if (s != null) {
        try {
          s.close();
        } catch (IOException e) {
          first = first == null ? e : first;
        }
      }
    }
    if (first != null) {
      throw first;
    }
  }

  @Override
  public String toString() {
    return "StarAllreduce(rank " + rank + " of " + size + ", " + Arrays.toString(peers) + ")";
  }

  private static String why(IOException e) {
    return e instanceof java.io.EOFException ? "it closed its connection mid-step"
        : e instanceof java.net.SocketTimeoutException ? "no data within " + "the timeout" : String.valueOf(e.getMessage());
  }
}
