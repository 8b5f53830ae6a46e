package dev.convspark.ml.exchange;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A ring worker's two connections, the one to its successor and the one from its predecessor,
 * and how their floats travel: in the socket's stream, or through a {@link MappedLane} where the
 * two ends share a host. {@link RingAllreduce} keeps the schedule (which message goes when); the
 * small values of its schedule (lengths, counts, statistics, strings) go through {@link #out} and
 * {@link #in} as they are, the floats through {@link #send} and {@link #receive}.
 */
final class RingLinks implements AutoCloseable {

  /** The byte that tells the receiver a message of the flow's schedule is in the lane. */
  private static final int DOORBELL = 0x5A;

  private final Socket toNext;
  private final Socket fromPrev;
  /** To the successor, through the connection's shaper. */
  final DataOutputStream out;
  /** From the predecessor, through the connection's shaper. */
  final DataInputStream in;
  private final int next;
  private final int prev;
  // The sender's and the receiver's buffers for floats through the stream, kept between steps.
  private final ByteBuffer sendBuf;
  private final ByteBuffer receiveBuf;
  /** The floats to the successor, and from the predecessor, through shared memory; else null. */
  private MappedLane toNextLane;
  private MappedLane fromPrevLane;

  /**
   * The connections of worker {@code prev + 1}, whose messages hold at most {@code maxFloats}
   * floats; they go through {@code shaper} (and never through shared memory until
   * {@link #pairLanes}).
   */
  RingLinks(Socket toNext, Socket fromPrev, Wire.Shaper shaper, int prev, int next, int maxFloats) throws IOException {
    this.toNext = toNext;
    this.fromPrev = fromPrev;
    this.prev = prev;
    this.next = next;
    this.out = new DataOutputStream(new BufferedOutputStream(shaper.out(toNext.getOutputStream()), 1 << 16));
    this.in = new DataInputStream(new BufferedInputStream(shaper.in(fromPrev.getInputStream()), 1 << 16));
    this.sendBuf = ByteBuffer.allocate(maxFloats * 4).order(ByteOrder.LITTLE_ENDIAN);
    this.receiveBuf = ByteBuffer.allocate(maxFloats * 4).order(ByteOrder.LITTLE_ENDIAN);
  }

  /**
   * Each worker offers its successor a {@link MappedLane} (when {@code shared} allows and it can
   * make one) and answers its predecessor's offer: yes where it finds the file, that is, where the
   * two share a host. Every worker writes its offer before it reads, and answers before it waits
   * for its own answer, so no worker waits on one that waits on it.
   */
  void pairLanes(boolean shared) throws IOException {
    MappedLane offered = shared ? MappedLane.create() : null;
    try {
      out.writeUTF(offered == null ? "" : offered.offer());
      out.flush();
      String offer;
      try {
        offer = in.readUTF();
      } catch (IOException e) {
        throw Wire.silent(prev, e);
      }
      if (!offer.isEmpty()) {
        fromPrevLane = shared ? MappedLane.open(offer) : null;
        fromPrev.getOutputStream().write(fromPrevLane != null ? 1 : 0);
        fromPrev.getOutputStream().flush();
      }
      if (offered != null) {
        int answer = toNext.getInputStream().read();
        if (answer < 0) {
          throw Wire.silent(next, new java.io.EOFException());
        }
        if (answer == 1) {
          toNextLane = offered;
          offered = null;
        }
      }
    } finally {
      if (toNextLane != null) {
        toNextLane.unlink();
      }
      if (offered != null) {
        offered.unlink();
        offered.close();
      }
    }
  }

  /**
   * The sender, at the start of a flow whose messages take {@code places} floats of a lane: the
   * lane its floats take, or null for the stream; with a lane, a byte tells the receiver which
   * (the lane may find no room for them).
   */
  MappedLane sendLane(long places) throws IOException {
    MappedLane lane = toNextLane != null && toNextLane.reserve(places) ? toNextLane : null;
    if (toNextLane != null) {
      out.writeBoolean(lane != null);
    }
    return lane;
  }

  /** The receiver, at the start of a flow of {@code places} floats: what {@link #sendLane} chose there. */
  MappedLane receiveLane(long places) throws IOException {
    MappedLane lane = fromPrevLane != null && in.readBoolean() ? fromPrevLane : null;
    if (lane != null) {
      lane.mapFor(places);
    }
    return lane;
  }

  /**
   * Sends {@code data[from, to)}: through {@code lane} at float {@code at} of its file, then its
   * doorbell (flushed with the sender's next wait or the flow's end); else through the stream, now.
   */
  void send(MappedLane lane, int at, float[] data, int from, int to) throws IOException {
    if (lane != null) {
      lane.put(at, data, from, to - from);
      out.write(DOORBELL);
      return;
    }
    ByteBuffer b = sendBuf;
    int piece = b.capacity() / 4;
    for (int at0 = from; at0 < to; at0 += piece) {
      int len = Math.min(piece, to - at0);
      b.clear();
      b.asFloatBuffer().put(data, at0, len);
      out.write(b.array(), 0, len * 4);
    }
    out.flush();
  }

  /** Floats a message through the stream goes in, in {@link #exchange}: one fits the buffers of any connection. */
  static final int EXCHANGE_PIECE = 1 << 12;

  /** Reads a message's small values from {@link #in}. */
  interface Header {
    void read() throws IOException;
  }

  /**
   * On one thread, sends {@code src[srcOff, srcOff + len)} to the successor and receives as many
   * floats from the predecessor into {@code dst} from {@code dstOff}, where every worker does the
   * same at once (after writing what {@code header} reads at the predecessor, which this reads
   * first): a lane's message whole (at float {@code at} of the lane's file), the stream's in
   * pieces of {@link #EXCHANGE_PIECE} floats, each written before the predecessor's is read, so no
   * worker's write waits on a successor that waits on its own write.
   */
  void exchange(MappedLane sendLane, MappedLane receiveLane, int at, float[] src, int srcOff, float[] dst,
                int dstOff, int len, Header header) throws IOException {
    if (sendLane != null) {
      sendLane.put(at, src, srcOff, len);
      out.write(DOORBELL);
    }
    out.flush();
    for (int done = 0; done < len || done == 0; done += EXCHANGE_PIECE) {
      int p = Math.min(EXCHANGE_PIECE, len - done);
      if (sendLane == null && p > 0) {
        sendBuf.clear();
        sendBuf.asFloatBuffer().put(src, srcOff + done, p);
        out.write(sendBuf.array(), 0, p * 4);
        out.flush();
      }
      if (done == 0) {
        header.read();
        if (receiveLane != null) {
          awaitDoorbell();
          receiveLane.get(at, dst, dstOff, len);
        }
      }
      if (receiveLane == null && p > 0) {
        in.readFully(receiveBuf.array(), 0, p * 4);
        receiveBuf.asFloatBuffer().get(dst, dstOff + done, p);
      }
    }
  }

  /** Writes one worker's value of an {@link #allGather} to the successor, and flushes. */
  interface Writer<T> {
    void write(T value) throws IOException;
  }

  /** Reads one worker's value of an {@link #allGather} from the predecessor. */
  interface Reader<T> {
    T read() throws IOException;
  }

  /**
   * Passes every worker's value round the ring, {@code all[rank]} this one's: N - 1 hops, each
   * forwarding what it got; {@code all} then holds every worker's, in rank order.
   */
  <T> void allGather(T[] all, int rank, Writer<T> write, Reader<T> read) throws IOException {
    int size = all.length;
    write.write(all[rank]);
    for (int k = 1; k < size; k++) {
      int from = (rank - k + size) % size;
      all[from] = read.read();
      if (k < size - 1) {
        write.write(all[from]);
      }
    }
  }

  /** Writes a worker's statistics to the successor, and flushes. */
  void writeStats(double[] v) throws IOException {
    for (double x : v) {
      out.writeDouble(x);
    }
    out.flush();
  }

  /** Reads a worker's statistics from the predecessor into {@code into}, and returns it. */
  double[] readStats(double[] into) throws IOException {
    for (int i = 0; i < into.length; i++) {
      into[i] = in.readDouble();
    }
    return into;
  }

  /** Tells the receiver that a message already written into the lane is there (flushed as {@link #send}'s are). */
  void ring() throws IOException {
    out.write(DOORBELL);
  }

  /** Receives a whole message of {@code len} floats (at float {@code at} of the lane) into {@code dst} from {@code off}. */
  void receive(MappedLane lane, int at, float[] dst, int off, int len) throws IOException {
    if (lane != null) {
      awaitDoorbell();
    }
    receivePart(lane, at, dst, off, len);
  }

  /**
   * Receives the next {@code len} floats of a message whose doorbell has come (a lane's message
   * is then read at float {@code at}), so that a long one can be taken in pieces.
   */
  void receivePart(MappedLane lane, int at, float[] dst, int off, int len) throws IOException {
    if (lane != null) {
      lane.get(at, dst, off, len);
      return;
    }
    ByteBuffer b = receiveBuf;
    int piece = b.capacity() / 4;
    for (int done = 0; done < len; done += piece) {
      int p = Math.min(piece, len - done);
      in.readFully(b.array(), 0, p * 4);
      b.asFloatBuffer().get(dst, off + done, p);
    }
  }

  /**
   * Waits until {@code done} says yes, read under {@code f}'s lock; first flushes what is written,
   * when it has to wait (the doorbells of a lane are flushed only then: the successor may be
   * waiting on them).
   */
  void awaitFlushing(SocketExchange.Flow f, java.util.function.BooleanSupplier done)
      throws IOException, InterruptedException {
    if (!f.holds(done)) {
      out.flush();
      f.await(done);
    }
  }

  /** Waits for the doorbell of the lane's next message. */
  void awaitDoorbell() throws IOException {
    int bell = in.readUnsignedByte();
    if (bell != DOORBELL) {
      throw new IOException("gradient exchange: worker " + prev + " sent " + bell + " where a doorbell was due");
    }
  }

  /** How long a read from the predecessor may wait, in ms. */
  int readTimeout() throws IOException {
    return fromPrev.getSoTimeout();
  }

  void setReadTimeout(int ms) throws IOException {
    fromPrev.setSoTimeout(ms);
  }

  @Override
  public void close() throws IOException {
    for (MappedLane lane : new MappedLane[] {toNextLane, fromPrevLane}) {
      if (lane != null) {
        lane.close();
      }
    }
    Wire.closeAll(toNext, fromPrev);
  }

  @Override
  public String toString() {
    return "to " + toNext + (toNextLane != null ? " through shared memory" : "") + ", from " + fromPrev
        + (fromPrevLane != null ? " through shared memory" : "");
  }
}
