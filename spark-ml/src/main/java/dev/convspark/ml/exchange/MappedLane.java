package dev.convspark.ml.exchange;

import java.io.IOException;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.SecureRandom;
import java.util.HexFormat;

/**
 * One direction of a ring connection between two workers on the same host: the floats travel
 * through a file in {@code /dev/shm} that both ends map, and only a one-byte doorbell per message
 * through the socket (which keeps the order, the deadlines and the notice of a dead peer).
 * Loopback TCP copies every byte through the kernel on both sides; here the sender copies a chunk
 * once into the mapping and the receiver once out of it.
 *
 * <p>The sender creates the file (readable by its owner only) with a random nonce at its head and
 * offers its path; the receiver maps it only when it finds the nonce there (so a worker on another
 * host, where the path names nothing or another file, answers no and the connection keeps its
 * stream), and the sender deletes the file once the receiver has answered: the mappings stay, so
 * nothing is left behind when a worker dies. Every message of a step has a place of its own in the
 * file (a chunk's partial sum and its gathered sum, each worker's factors, each hop of the tail),
 * so no place is written twice within a step, and a worker only begins a step once every worker's
 * receiver has finished the last one (each sends its statistics after its receiver is done), and
 * it writes no lane before its receiver has every worker's count of the new step, so a place is
 * never written while it is being read.
 */
final class MappedLane implements AutoCloseable {

  /** Where the file lives: memory, never a disk. */
  static final Path DIRECTORY = Path.of("/dev/shm");
  /** Bytes before the first float: the nonce, then padding to a cache line. */
  private static final int HEADER = 64;
  private static final int NONCE = 16;

  private final Path path;
  private final FileChannel channel;
  /** The sender's nonce; null at the receiver. */
  private final byte[] nonce;
  private long capacity;
  private FloatBuffer floats;

  private MappedLane(Path path, FileChannel channel, byte[] nonce) {
    this.path = path;
    this.channel = channel;
    this.nonce = nonce;
  }

  /**
   * The sending side: a new file in {@link #DIRECTORY} with a random nonce; null where there is
   * no such directory or it takes no file. {@link #offer} says how the receiver finds it.
   */
  static MappedLane create() {
    if (!Files.isDirectory(DIRECTORY) || !Files.isWritable(DIRECTORY)) {
      return null;
    }
    byte[] nonce = new byte[NONCE];
    new SecureRandom().nextBytes(nonce);
    Path path = DIRECTORY.resolve("convspark-ring-" + HexFormat.of().formatHex(nonce, 0, 8) + ".floats");
    FileChannel channel = null;
    try {
      channel = FileChannel.open(path, java.util.Set.of(StandardOpenOption.CREATE_NEW, StandardOpenOption.READ,
          StandardOpenOption.WRITE), PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
      ByteBuffer head = ByteBuffer.allocate(HEADER);
      head.put(nonce).clear();
      while (head.hasRemaining()) {
        channel.write(head, head.position());
      }
      return new MappedLane(path, channel, nonce);
    } catch (IOException | UnsupportedOperationException e) {
      closeQuietly(channel);
      deleteQuietly(path);
      return null;
    }
  }

  /** What the receiver needs to find this lane's file: its path and nonce. */
  String offer() {
    return path + " " + HexFormat.of().formatHex(nonce);
  }

  /**
   * The receiving side of the lane {@code offer} describes, or null when this worker cannot see
   * that file (another host) or finds another nonce in it.
   */
  static MappedLane open(String offer) {
    int space = offer.lastIndexOf(' ');
    if (space < 0) {
      return null;
    }
    Path path = Path.of(offer.substring(0, space));
    byte[] nonce;
    try {
      nonce = HexFormat.of().parseHex(offer.substring(space + 1));
    } catch (IllegalArgumentException e) {
      return null;
    }
    if (!DIRECTORY.equals(path.getParent())) {
      return null;
    }
    FileChannel channel = null;
    try {
      channel = FileChannel.open(path, StandardOpenOption.READ);
      ByteBuffer head = ByteBuffer.allocate(NONCE);
      while (head.hasRemaining() && channel.read(head, head.position()) >= 0) {
        // reads the nonce
      }
      if (head.hasRemaining() || !java.security.MessageDigest.isEqual(head.array(), nonce)) {
        channel.close();
        return null;
      }
      return new MappedLane(path, channel, null);
    } catch (IOException | RuntimeException e) {
      closeQuietly(channel);
      return null;
    }
  }

  /** Removes the file's name (both ends have it open by now, or have given it up). */
  void unlink() {
    deleteQuietly(path);
  }

  /**
   * The sender, before a flow whose messages take {@code floats} places (each message of the flow
   * a place of its own): makes room for them, writing the new part of the file so that a full
   * {@code /dev/shm} fails here (false: this flow goes through the stream) rather than as a fault
   * on a later store.
   */
  boolean reserve(long floats) {
    long bytes = HEADER + 4L * floats;
    if (bytes <= capacity) {
      return true;
    }
    if (bytes > Integer.MAX_VALUE || refused) {
      return false;
    }
    try {
      ByteBuffer zeros = ByteBuffer.allocate(1 << 20);
      for (long at = Math.max(capacity, HEADER); at < bytes; ) {
        zeros.clear().limit((int) Math.min(zeros.capacity(), bytes - at));
        at += channel.write(zeros, at);
      }
      map(bytes);
      return true;
    } catch (IOException e) {
      // No room: give back what was written and do not try again every step.
      refused = true;
      try {
        channel.truncate(Math.max(capacity, HEADER));
      } catch (IOException ignored) {
        // the file goes with the lane
      }
      return false;
    }
  }

  /** The file could not grow once ({@code /dev/shm} full): later flows take the stream. */
  private boolean refused;

  /** The receiver, before a flow of {@code floats} places the sender has made room for. */
  void mapFor(long floats) throws IOException {
    long bytes = HEADER + 4L * floats;
    if (bytes > capacity) {
      map(bytes);
    }
  }

  private void map(long bytes) throws IOException {
    MappedByteBuffer m = channel.map(nonce != null ? FileChannel.MapMode.READ_WRITE : FileChannel.MapMode.READ_ONLY, 0, bytes);
    floats = m.order(ByteOrder.nativeOrder()).position(HEADER).slice().order(ByteOrder.nativeOrder()).asFloatBuffer();
    capacity = bytes;
  }

  /** Writes {@code data[from, from + len)} at float {@code at} of the mapping, visible before the doorbell. */
  void put(int at, float[] data, int from, int len) {
    floats.put(at, data, from, len);
    VarHandle.releaseFence();
  }

  /** Reads floats {@code [at, at + len)} of the mapping into {@code dst} from {@code off}, after its doorbell. */
  void get(int at, float[] dst, int off, int len) {
    VarHandle.acquireFence();
    floats.get(at, dst, off, len);
  }

  @Override
  public void close() {
    closeQuietly(channel);
    floats = null;
  }

  private static void closeQuietly(FileChannel c) {
    if (c != null) {
      try {
        c.close();
      } catch (IOException e) {
        // nothing to keep
      }
    }
  }

  private static void deleteQuietly(Path p) {
    try {
      Files.deleteIfExists(p);
    } catch (IOException e) {
      // a name left in /dev/shm: nothing else depends on it
    }
  }
}
