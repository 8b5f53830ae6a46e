package dev.convspark.ml.exchange;

import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import javax.crypto.Cipher;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.SecretKeySpec;

/**
 * Encrypts and authenticates every message of a worker's connections with AES-GCM (128-bit
 * tags), under a 256-bit key derived from the run's secret: what the exchanges' traffic goes
 * through when Spark's {@code spark.network.crypto.enabled} or {@code spark.ssl.enabled} is set.
 * The secret is made afresh by worker 0 for every stage attempt and reaches the workers through
 * Spark's barrier {@code allGather} (Spark's RPC, itself encrypted under those settings); it never
 * crosses the exchange's own sockets except in the handshake, which authenticates and carries no
 * gradient.
 *
 * <p>A message is what a worker writes between two flushes, cut at 64 KB: on the wire, its length,
 * a 12-byte nonce (the sender's rank, the connection's index at the sender, a counter) and the
 * ciphertext with its tag. A receiver accepts only increasing counters, so a message cannot be
 * replayed or reordered, and a changed byte fails the tag: the step stops with a message naming
 * the worker, never a silently wrong sum.
 */
public final class Encryption implements Wire.Shaper {

  private static final int MAX_MESSAGE = 64 * 1024;
  private static final int TAG_BITS = 128;

  private final SecretKeySpec key;
  private final int rank;
  private final Wire.Shaper below;
  private int streams;

  /**
   * The encryption of worker {@code rank}'s connections in the run of {@code secret}, over
   * {@code below} (what the bytes then pass through: {@link Wire#NONE} on a real network).
   */
  public Encryption(String secret, int rank, Wire.Shaper below) {
    this.key = new SecretKeySpec(derive(secret), "AES");
    this.rank = rank;
    this.below = below;
  }

  private static byte[] derive(String secret) {
    try {
      MessageDigest sha = MessageDigest.getInstance("SHA-256");
      sha.update("convspark gradient exchange, AES-256-GCM key\n".getBytes(StandardCharsets.UTF_8));
      return sha.digest(secret.getBytes(StandardCharsets.UTF_8));
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("this JVM has no SHA-256", e);
    }
  }

  private static Cipher cipher() {
    try {
      return Cipher.getInstance("AES/GCM/NoPadding");
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("this JVM has no AES/GCM/NoPadding", e);
    }
  }

  @Override
  public synchronized OutputStream out(OutputStream raw) {
    return new Sealing(below.out(raw), rank, streams++);
  }

  @Override
  public InputStream in(InputStream raw) {
    return new Opening(below.in(raw));
  }

  /** A message that is not what its sender sealed with this run's key, in order. */
  static final class Refused extends IOException {
    private static final long serialVersionUID = 1L;

    Refused(String message) {
      super(message);
    }
  }

  /** Buffers what is written and sends it sealed at each flush (or every 64 KB). */
  private final class Sealing extends OutputStream {
    private final OutputStream out;
    private final Cipher cipher = cipher();
    private final byte[] plain = new byte[MAX_MESSAGE];
    /** A message as it goes: its length, the nonce, the ciphertext and tag (one write, one packet). */
    private final byte[] sealed = new byte[16 + MAX_MESSAGE + TAG_BITS / 8];
    private final ByteBuffer frame = ByteBuffer.wrap(sealed);
    private final ByteBuffer nonce = ByteBuffer.allocate(12);
    private int used;
    private long counter;

    Sealing(OutputStream out, int rank, int stream) {
      this.out = out;
      nonce.putShort(0, (short) rank);
      nonce.putShort(2, (short) stream);
    }

    @Override
    public void write(int b) throws IOException {
      if (used == plain.length) {
        seal();
      }
      plain[used++] = (byte) b;
    }

    @Override
    public void write(byte[] b, int off, int len) throws IOException {
      while (len > 0) {
        if (used == plain.length) {
          seal();
        }
        int n = Math.min(len, plain.length - used);
        System.arraycopy(b, off, plain, used, n);
        used += n;
        off += n;
        len -= n;
      }
    }

    private void seal() throws IOException {
      if (used == 0) {
        return;
      }
      nonce.putLong(4, ++counter);
      int n;
      try {
        cipher.init(Cipher.ENCRYPT_MODE, key, new GCMParameterSpec(TAG_BITS, nonce.array()));
        n = cipher.doFinal(plain, 0, used, sealed, 16);
      } catch (GeneralSecurityException e) {
        throw new IOException("gradient exchange: could not encrypt a message: " + e, e);
      }
      frame.putInt(0, n);
      frame.put(4, nonce.array());
      out.write(sealed, 0, 16 + n);
      used = 0;
    }

    @Override
    public void flush() throws IOException {
      seal();
      out.flush();
    }

    @Override
    public void close() throws IOException {
      flush();
      out.close();
    }
  }

  /** Reads sealed messages, checks their tags and counters, and serves their plaintext. */
  private final class Opening extends InputStream {
    private final DataInputStream in;
    private final Cipher cipher = cipher();
    private final byte[] nonce = new byte[12];
    private final byte[] sealed = new byte[MAX_MESSAGE + TAG_BITS / 8];
    private final byte[] plain = new byte[MAX_MESSAGE + TAG_BITS / 8];
    private int pos;
    private int limit;
    private long counter = -1;

    Opening(InputStream in) {
      this.in = new DataInputStream(in);
    }

    /** Reads the next message; false at the end of the stream (between messages only). */
    private boolean open() throws IOException {
      int n;
      try {
        n = in.readInt();
      } catch (EOFException e) {
        return false;
      }
      if (n < TAG_BITS / 8 || n > sealed.length) {
        throw new Refused("an encrypted message of " + n + " bytes (expected "
            + TAG_BITS / 8 + " to " + sealed.length + "): the peer does not encrypt, or not with this run's key");
      }
      in.readFully(nonce);
      in.readFully(sealed, 0, n);
      long c = ByteBuffer.wrap(nonce).getLong(4);
      if (c <= counter) {
        throw new Refused("an encrypted message came again or out of order (counter " + c
            + " after " + counter + ")");
      }
      try {
        cipher.init(Cipher.DECRYPT_MODE, key, new GCMParameterSpec(TAG_BITS, nonce));
        limit = cipher.doFinal(sealed, 0, n, plain, 0);
      } catch (GeneralSecurityException e) {
        throw new Refused("a message failed authentication (changed on the way, or sealed with another key): "
            + e.getMessage());
      }
      counter = c;
      pos = 0;
      return true;
    }

    @Override
    public int read() throws IOException {
      while (pos == limit) {
        if (!open()) {
          return -1;
        }
      }
      return plain[pos++] & 0xff;
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
      if (len == 0) {
        return 0;
      }
      while (pos == limit) {
        if (!open()) {
          return -1;
        }
      }
      int n = Math.min(len, limit - pos);
      System.arraycopy(plain, pos, b, off, n);
      pos += n;
      return n;
    }

    @Override
    public void close() throws IOException {
      in.close();
    }
  }
}
