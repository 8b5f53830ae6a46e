package dev.convspark.jobs.scaling;

import dev.convspark.ml.exchange.Wire;
import java.io.FilterInputStream;
import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.util.concurrent.locks.LockSupport;

/**
 * A simulated network link of one worker: everything it sends, over all its connections, leaves
 * at most at {@code bytesPerSecond} (a token bucket that refills at that rate), and everything it
 * receives arrives at most at that rate too, as through a NIC of that speed, full duplex. Pieces
 * of at most 16 KB.
 */
final class LinkCap implements Wire.Shaper {

  private static final int PIECE = 16 * 1024;

  private final Bucket egress;
  private final Bucket ingress;

  LinkCap(double bytesPerSecond) {
    this.egress = new Bucket(bytesPerSecond);
    this.ingress = new Bucket(bytesPerSecond);
  }

  /**
   * A token bucket: bytes pass at the rate on average, with at most {@value #BURST_NS} ns of the
   * link's bytes ahead of it (a NIC's queue), so that a sleep that wakes late costs no rate.
   */
  private static final class Bucket {
    private static final long BURST_NS = 1_000_000;
    private final double nanosPerByte;
    private long next;

    Bucket(double bytesPerSecond) {
      this.nanosPerByte = 1e9 / bytesPerSecond;
      this.next = System.nanoTime();
    }

    /** Waits until {@code bytes} more may pass. */
    void take(int bytes) {
      long until;
      synchronized (this) {
        next = Math.max(next, System.nanoTime() - BURST_NS) + (long) (bytes * nanosPerByte);
        until = next - BURST_NS;
      }
      for (long left = until - System.nanoTime(); left > 0; left = until - System.nanoTime()) {
        LockSupport.parkNanos(left);
      }
    }
  }

  @Override
  public InputStream in(InputStream raw) {
    return new FilterInputStream(raw) {
      @Override
      public int read() throws IOException {
        int b = in.read();
        if (b >= 0) {
          ingress.take(1);
        }
        return b;
      }

      @Override
      public int read(byte[] b, int off, int len) throws IOException {
        int n = in.read(b, off, Math.min(len, PIECE));
        if (n > 0) {
          ingress.take(n);
        }
        return n;
      }
    };
  }

  @Override
  public OutputStream out(OutputStream raw) {
    return new FilterOutputStream(raw) {
      @Override
      public void write(int b) throws IOException {
        egress.take(1);
        out.write(b);
      }

      @Override
      public void write(byte[] b, int off, int len) throws IOException {
        for (int at = off; at < off + len; at += PIECE) {
          int n = Math.min(PIECE, off + len - at);
          egress.take(n);
          out.write(b, at, n);
        }
      }
    };
  }
}
