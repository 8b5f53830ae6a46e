package dev.convspark.ml.exchange;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** A lane's file: found only with its nonce, in /dev/shm; what one end puts, the other gets. */
class MappedLaneTest {

  /** A sending side, where this host has a /dev/shm (else the test is skipped, saying why). */
  private static MappedLane sender() {
    assumeTrue(Files.isDirectory(MappedLane.DIRECTORY) && Files.isWritable(MappedLane.DIRECTORY),
        "skipped: this host has no writable /dev/shm, so the ring keeps its floats in the sockets");
    MappedLane sender = MappedLane.create();
    assertNotNull(sender);
    return sender;
  }

  @Test
  void theReceiverFindsTheFileByItsNonceAndGetsWhatTheSenderPuts() throws Exception {
    MappedLane sender = sender();
    String offer = sender.offer();
    Path file = Path.of(offer.substring(0, offer.lastIndexOf(' ')));
    try (sender; MappedLane receiver = MappedLane.open(offer)) {
      assertNotNull(receiver, "the offer of a file on this host is taken");
      assertTrue(Files.exists(file));
      sender.unlink();
      assertFalse(Files.exists(file), "the name is gone once both ends hold the file");
      int n = 5000;
      float[] data = new float[n];
      for (int i = 0; i < n; i++) {
        data[i] = i * 0.5f - 7;
      }
      // Places that would pass 2 GB of mapping: that flow takes the stream.
      assertFalse(sender.reserve(600_000_000));
      assertTrue(sender.reserve(2 * n));
      sender.put(n + 100, data, 100, 900);
      receiver.mapFor(2 * n);
      float[] got = new float[900];
      receiver.get(n + 100, got, 0, 900);
      assertArrayEquals(java.util.Arrays.copyOfRange(data, 100, 1000), got);
      // A larger array later: the file grows, and the floats already there stay.
      assertTrue(sender.reserve(8 * n));
      sender.put(7 * n, data, 0, n);
      receiver.mapFor(8 * n);
      float[] all = new float[n];
      receiver.get(7 * n, all, 0, n);
      assertArrayEquals(data, all);
      receiver.get(n + 100, got, 0, 900);
      assertArrayEquals(java.util.Arrays.copyOfRange(data, 100, 1000), got);
    } finally {
      Files.deleteIfExists(file);
    }
  }

  @Test
  void anOfferWithAnotherNonceOrOutsideDevShmOrGarbledIsRefused() throws Exception {
    MappedLane sender = sender();
    String offer = sender.offer();
    String path = offer.substring(0, offer.lastIndexOf(' '));
    String nonce = offer.substring(offer.lastIndexOf(' ') + 1);
    try (sender) {
      // A worker on another host may find some other file under the same name: the nonce tells.
      String other = (nonce.charAt(0) == '0' ? "1" : "0") + nonce.substring(1);
      assertNull(MappedLane.open(path + " " + other));
      assertNull(MappedLane.open("/tmp/" + Path.of(path).getFileName() + " " + nonce));
      assertNull(MappedLane.open(path + "-missing " + nonce));
      assertNull(MappedLane.open(path + " not-hex"));
      assertNull(MappedLane.open("no-space"));
      assertNull(MappedLane.open("relative " + nonce));
    } finally {
      sender.unlink();
    }
  }
}
