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
 * pipelined in chunks (see {@link #allreduce}), and on the CPU it starts while the backward pass
 * is still computing the gradients (see {@link #beginStep}).
 *
 * <p>A step on the wire: each worker sends its array's length and its sample count, then its
 * chunks from the last to the first; the hub returns each chunk summed in rank order (divided by
 * the total count for a mean) as soon as it has every worker's copy; then each worker sends its
 * statistics and the hub returns their sums.
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
          throw silent(r, e);
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
      throw silent(0, e);
    }
    return all;
  }

  /** Floats per chunk of the pipelined exchange (256 KB). */
  static final int CHUNK = 1 << 16;

  /** The step begun by {@link #beginStep}, streaming as the backward pass goes, or null. */
  private Stream streaming;

  /**
   * On the CPU (the gradients in this JVM's heap), starts sending this step's gradients while the
   * backward pass is still computing them: it finishes the layers from the last to the first,
   * and the first dense layer, 98% of deep-mnist's gradients, comes second. Each chunk goes out
   * (last chunk first) as soon as the runner says it is final, the hub sums and returns each
   * chunk once every worker's copy is in, and the means come back while the convolutions'
   * gradients are still being computed. {@code count}: the samples this worker's gradient sums,
   * known before the gradient is (the hub divides by the total as it goes).
   */
  @Override
  public void beginStep(dev.convspark.tensor.backend.ModelRunner runner, int count) throws IOException {
    float[] grads = runner.hostGradients();
    if (size == 1 || grads == null) {
      return;
    }
    streaming = start(grads, count, true, false);
    runner.setGradientListener(streaming);
  }

  /**
   * Finishes the step: the gradient's mean arrives (streamed since {@link #beginStep}, or sent
   * now), the summed statistics after it, which {@code check} sees before anything changes, then
   * the update. A lone worker scales its gradients where they are
   * ({@link GradientExchange#alone}); gradients on a GPU are copied out through {@code scratch}
   * and the mean back.
   */
  @Override
  public void step(dev.convspark.tensor.backend.ModelRunner runner, dev.convspark.tensor.optim.Optimizer optimizer,
                   float[] scratch, double[] stats, java.util.function.Consumer<double[]> check) throws IOException {
    if (size == 1) {
      GradientExchange.alone(runner, optimizer, stats, check);
      return;
    }
    Stream s = streaming;
    streaming = null;
    float[] live = runner.hostGradients();
    if (s == null) {
      if (live == null) {
        runner.copyGradientsTo(scratch);
      }
      s = start(live != null ? live : scratch, stats[stats.length - 1], true, true);
    } else {
      runner.setGradientListener(null);
      s.accept(0);
    }
    finish(s, stats);
    check.accept(stats);
    if (s.data != live) {
      runner.copyGradientsFrom(s.data);
    }
    runner.applyGradients(optimizer);
  }

  /**
   * Replaces {@code data} and {@code stats} with their sums over all workers. Pipelined in chunks:
   * a worker's sender streams its array while its receiver reads the summed chunks coming back,
   * and the hub returns each chunk as soon as every worker's copy of it has arrived, so sending,
   * summing and returning overlap instead of following one another.
   */
  @Override
  public void allreduce(float[] data, double[] stats) throws IOException {
    if (size > 1) {
      finish(start(data, stats[stats.length - 1], false, true), stats);
    }
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
    finish(start(grads, stats[stats.length - 1], true, true), stats);
    return grads;
  }

  /**
   * One exchange of an array in flight. Its chunks go out from the last to the first, each once
   * {@link #accept} has said that everything from its start on is final; the hub's reducer (a
   * worker's sender and receiver) run on threads of their own meanwhile.
   */
  private final class Stream implements java.util.function.IntConsumer {
    final float[] data;
    final double count;
    final boolean mean;
    /** The hub: the counts' sum, which the chunks were divided by. */
    double total;
    private int readyFrom;
    private boolean abandoned;
    java.util.concurrent.Future<?> io;
    java.util.concurrent.Future<?> receiving;

    Stream(float[] data, double count, boolean mean, boolean ready) {
      this.data = data;
      this.count = count;
      this.mean = mean;
      this.readyFrom = ready ? 0 : data.length;
    }

    /** Everything from {@code from} on is final (the runner's gradient listener). */
    @Override
    public synchronized void accept(int from) {
      if (from < readyFrom) {
        readyFrom = from;
        notifyAll();
      }
    }

    synchronized void awaitReady(int from) throws IOException, InterruptedException {
      while (readyFrom > from) {
        if (abandoned) {
          throw new IOException("gradient exchange: the step was abandoned");
        }
        wait(100);
      }
    }

    synchronized void abandon() {
      abandoned = true;
      notifyAll();
      for (java.util.concurrent.Future<?> f : new java.util.concurrent.Future<?>[] {io, receiving}) {
        if (f != null) {
          f.cancel(true);
        }
      }
    }
  }

  private Stream start(float[] data, double count, boolean mean, boolean ready) {
    Stream s = new Stream(data, count, mean, ready);
    if (rank == 0) {
      s.io = helpers().submit(() -> reduce(s));
    } else {
      s.io = helpers().submit(() -> send(s));
      s.receiving = helpers().submit(() -> receive(s));
    }
    return s;
  }

  /** The hub's reducer: every worker's count, then each chunk summed in rank order and returned. */
  private Void reduce(Stream s) throws IOException, InterruptedException {
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
        throw silent(r, e);
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
          throw silent(r, e);
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
  private Void send(Stream s) throws IOException, InterruptedException {
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
  private Void receive(Stream s) throws IOException {
    int n = s.data.length;
    // A chunk comes back only after the hub has read it, so the sender is done with it by then.
    ByteBuffer b = ByteBuffer.allocate(CHUNK * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (int off = (n - 1) / CHUNK * CHUNK; off >= 0; off -= CHUNK) {
      int len = Math.min(CHUNK, n - off);
      try {
        in[0].readFully(b.array(), 0, len * 4);
      } catch (IOException e) {
        throw silent(0, e);
      }
      b.asFloatBuffer().get(s.data, off, len);
    }
    return null;
  }

  /**
   * Waits for {@code s}'s array, then sums {@code stats} over the workers in rank order (the hub
   * adds them up and sends the sums back); checks that the counts are those the sums of the
   * array were divided by.
   */
  private void finish(Stream s, double[] stats) throws IOException {
    boolean done = false;
    try {
      if (rank == 0) {
        await(s.io);
        double[] st = new double[stats.length];
        for (int r = 1; r < size; r++) {
          try {
            for (int i = 0; i < st.length; i++) {
              st[i] = in[r].readDouble();
            }
          } catch (IOException e) {
            throw silent(r, e);
          }
          for (int i = 0; i < stats.length; i++) {
            stats[i] += st[i];
          }
        }
        if (stats[stats.length - 1] != s.total) {
          throw new IOException("gradient exchange: the workers announced " + s.total + " samples before the step but"
              + " their statistics count " + stats[stats.length - 1]);
        }
        for (int r = 1; r < size; r++) {
          for (double v : stats) {
            out[r].writeDouble(v);
          }
          out[r].flush();
        }
      } else {
        await(s.io);
        try {
          for (double v : stats) {
            out[0].writeDouble(v);
          }
          out[0].flush();
          await(s.receiving);
          for (int i = 0; i < stats.length; i++) {
            stats[i] = in[0].readDouble();
          }
        } catch (IOException e) {
          throw silent(0, e);
        }
      }
      done = true;
    } finally {
      if (!done) {
        s.abandon();
      }
    }
  }

  private static void await(java.util.concurrent.Future<?> f) throws IOException {
    try {
      f.get();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("gradient exchange interrupted", e);
    } catch (java.util.concurrent.ExecutionException e) {
      Throwable c = e.getCause();
      throw c instanceof IOException io ? new IOException(io.getMessage(), io)
          : new IOException("gradient exchange failed: " + c, c);
    }
  }

  private java.util.concurrent.ExecutorService helpers;

  /** Threads for the hub's reducer and a worker's sender and receiver. */
  private java.util.concurrent.ExecutorService helpers() {
    if (helpers == null) {
      helpers = java.util.concurrent.Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r, "convspark-gradient-exchange-" + rank);
        t.setDaemon(true);
        return t;
      });
    }
    return helpers;
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
    if (streaming != null) {
      streaming.abandon();
    }
    if (helpers != null) {
      helpers.shutdownNow();
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

  /** What a failed read from (or write to) worker {@code peer} means to this one. */
  private static IOException silent(int peer, IOException e) {
    return new IOException("gradient exchange: worker " + peer + " failed or stopped answering: " + why(e), e);
  }

  private static String why(IOException e) {
    return e instanceof java.io.EOFException ? "it closed its connection mid-step"
        : e instanceof java.net.SocketTimeoutException ? "no data within " + "the timeout" : String.valueOf(e.getMessage());
  }
}
