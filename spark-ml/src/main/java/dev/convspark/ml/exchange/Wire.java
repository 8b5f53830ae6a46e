package dev.convspark.ml.exchange;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.function.BooleanSupplier;

/**
 * How the socket exchanges ({@link StarAllreduce}, {@link RingAllreduce}) connect: a worker listens
 * on its executor's address, the others connect and open with the run's secret (shared through
 * Spark's barrier {@code allGather}) and their rank; anything else is closed after that handshake and
 * does not disturb the run. Every wait has a deadline, so a worker that never comes makes the
 * others fail with a message naming it.
 */
public final class Wire {

  static final int MAGIC = 0x43535041; // "CSPA"

  private Wire() {
  }

  /**
   * What a worker's connections pass through: nothing on a real network ({@link #NONE}); the
   * scaling benchmark's link-rate caps over loopback.
   */
  public interface Shaper {
    /** The stream a worker reads a connection through. */
    InputStream in(InputStream raw);

    /** The stream a worker writes a connection through. */
    OutputStream out(OutputStream raw);

    /**
     * Whether a connection's floats may bypass its streams through memory both ends map, where
     * the two workers share a host ({@link MappedLane}): only for connections taken as they are.
     */
    default boolean sharesMemory() {
      return false;
    }
  }

  /** Connections as they are; between workers on one host, the floats through shared memory. */
  public static final Shaper NONE = new Plain(true);

  /** Connections as they are, every byte through the socket even on one host. */
  public static final Shaper STREAM = new Plain(false);

  private record Plain(boolean sharesMemory) implements Shaper {
    @Override
    public InputStream in(InputStream raw) {
      return raw;
    }

    @Override
    public OutputStream out(OutputStream raw) {
      return raw;
    }
  }

  /** A listening socket bound to {@code host} (the executor's address) on a free port. */
  public static ServerSocket listen(String host) throws IOException {
    ServerSocket s = new ServerSocket();
    s.bind(new InetSocketAddress(InetAddress.getByName(host), 0), 64);
    return s;
  }

  /**
   * Connects to the worker listening at {@code host:port} as worker {@code rank} of the run of
   * {@code secret}.
   */
  static Socket connect(int rank, String host, int port, String secret, int timeoutMs, String whom)
      throws IOException {
    Socket s = new Socket();
    try {
      s.connect(new InetSocketAddress(host, port), timeoutMs);
      s.setSoTimeout(timeoutMs);
      s.setTcpNoDelay(true);
      DataOutputStream d = new DataOutputStream(s.getOutputStream());
      byte[] b = secret.getBytes(StandardCharsets.UTF_8);
      d.writeInt(MAGIC);
      d.writeShort(b.length);
      d.write(b);
      d.writeInt(rank);
      d.flush();
      return s;
    } catch (IOException e) {
      s.close();
      throw new IOException("gradient exchange: worker " + rank + " could not reach " + whom + " at " + host + ":" + port
          + ": " + e.getMessage(), e);
    }
  }

  /**
   * Accepts, on {@code server}, one connection from each worker whose rank is marked in
   * {@code wanted}, refusing any other; returns them by rank (null where not wanted).
   *
   * @param killed true once this worker's task was killed (Spark kills the other tasks of a barrier
   *     stage when one fails, without interrupting them): it then stops waiting
   * @throws IOException when not every wanted worker arrives within {@code timeoutMs}
   */
  static Socket[] accept(ServerSocket server, boolean[] wanted, String secret, int timeoutMs, int stepTimeoutMs,
                         BooleanSupplier killed, int self) throws IOException {
    int size = wanted.length;
    Socket[] peers = new Socket[size];
    long deadline = System.currentTimeMillis() + timeoutMs;
    try {
      while (!missing(peers, wanted).isEmpty()) {
        long left = deadline - System.currentTimeMillis();
        if (left <= 0) {
          throw new IOException("gradient exchange: worker " + self + " of " + size + " waited " + timeoutMs / 1000
              + " s, but ranks " + missing(peers, wanted) + " did not connect (missing ranks "
              + missing(peers, wanted) + ")");
        }
        if (killed.getAsBoolean()) {
          throw new IOException("gradient exchange: worker " + self + "'s task was killed while waiting for ranks "
              + missing(peers, wanted));
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
        int peer = handshake(s, secret, size);
        if (peer < 0 || !wanted[peer] || peers[peer] != null) {
          s.close();
          continue;
        }
        s.setSoTimeout(stepTimeoutMs);
        peers[peer] = s;
      }
      return peers;
    } catch (IOException e) {
      closeAll(peers);
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
      int peer = d.readInt();
      boolean ok = MessageDigest.isEqual(b, secret.getBytes(StandardCharsets.UTF_8));
      return ok && peer >= 0 && peer < size ? peer : -1;
    } catch (IOException e) {
      return -1;
    }
  }

  private static String missing(Socket[] peers, boolean[] wanted) {
    StringBuilder b = new StringBuilder();
    for (int i = 0; i < peers.length; i++) {
      if (wanted[i] && peers[i] == null) {
        b.append(b.length() == 0 ? "" : ", ").append(i);
      }
    }
    return b.toString();
  }

  /** Closes every socket of {@code sockets} that is there; throws the first failure after trying all. */
  static void closeAll(Socket... sockets) throws IOException {
    IOException first = null;
    for (Socket s : sockets) {
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

  /** What a failed read from (or write to) worker {@code peer} means to this one. */
  static IOException silent(int peer, IOException e) {
    if (e instanceof Encryption.Refused) {
      return new IOException("gradient exchange: a message from worker " + peer + " was refused: " + e.getMessage(), e);
    }
    String why = e instanceof java.io.EOFException ? "it closed its connection mid-step"
        : e instanceof SocketTimeoutException ? "no data within the timeout" : String.valueOf(e.getMessage());
    return new IOException("gradient exchange: worker " + peer + " failed or stopped answering: " + why, e);
  }
}
