package dev.convspark.datasets.mnist;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpServer;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The fetcher's verification and fall-through, against a real HTTP server on loopback. */
class MnistFetcherTest {

  @TempDir
  Path dir;

  private final List<String> log = new ArrayList<>();
  private final Map<String, byte[]> served = new ConcurrentHashMap<>();
  private final AtomicInteger requests = new AtomicInteger();
  private HttpServer server;
  private byte[] contentA;
  private byte[] contentB;
  private DatasetFile fileA;
  private DatasetFile fileB;

  @BeforeEach
  void startServer() throws IOException {
    Random r = new Random(7);
    contentA = new byte[5000];
    contentB = new byte[333];
    r.nextBytes(contentA);
    r.nextBytes(contentB);
    fileA = new DatasetFile("a-images-idx3-ubyte", contentA.length, sha256(contentA));
    fileB = new DatasetFile("a-labels-idx1-ubyte", contentB.length, sha256(contentB));
    server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
    server.createContext("/", ex -> {
      requests.incrementAndGet();
      byte[] body = served.get(ex.getRequestURI().getPath());
      if (body == null) {
        ex.sendResponseHeaders(404, -1);
      } else {
        ex.sendResponseHeaders(200, body.length);
        ex.getResponseBody().write(body);
      }
      ex.close();
    });
    server.start();
  }

  @AfterEach
  void stopServer() {
    server.stop(0);
  }

  private String serve(String folder, DatasetFile f, byte[] raw) throws IOException {
    served.put("/" + folder + "/" + f.gzipName(), gzip(raw));
    return mirror(folder);
  }

  private String mirror(String folder) {
    return "http://127.0.0.1:" + server.getAddress().getPort() + "/" + folder + "/";
  }

  private MirrorSource source(String url) {
    return new MirrorSource(url, Duration.ofSeconds(5), Duration.ofSeconds(5));
  }

  private MnistFetcher fetcher(FileSource... sources) {
    return new MnistFetcher(dir, List.of(fileA, fileB), List.of(sources), log::add);
  }

  @Test
  void fetchesMissingFilesFromAMirrorAndVerifiesThem() throws IOException {
    serve("m1", fileA, contentA);
    String url = serve("m1", fileB, contentB);
    assertEquals(2, fetcher(source(url)).fetch());
    assertArrayEquals(contentA, Files.readAllBytes(dir.resolve(fileA.name())));
    assertArrayEquals(contentB, Files.readAllBytes(dir.resolve(fileB.name())));
    assertNoPartFiles();
  }

  @Test
  void secondRunContactsNoSource() throws IOException {
    serve("m1", fileA, contentA);
    String url = serve("m1", fileB, contentB);
    fetcher(source(url)).fetch();
    int before = requests.get();
    assertEquals(0, fetcher(source(url)).fetch());
    assertEquals(before, requests.get(), "no HTTP request on the second run");
    assertTrue(log.get(log.size() - 1).contains("nothing to fetch"), log.toString());
  }

  @Test
  void truncatedFileIsReportedByNameAndReplaced() throws IOException {
    Files.write(dir.resolve(fileB.name()), contentB);
    Files.write(dir.resolve(fileA.name()), java.util.Arrays.copyOf(contentA, 100));
    String url = serve("m1", fileA, contentA);
    assertEquals(1, fetcher(source(url)).fetch());
    assertTrue(log.stream().anyMatch(l -> l.contains(fileA.name()) && l.contains("truncated")), log.toString());
    assertArrayEquals(contentA, Files.readAllBytes(dir.resolve(fileA.name())));
  }

  @Test
  void corruptFileOfTheRightLengthIsReportedByNameAndReplaced() throws IOException {
    Files.write(dir.resolve(fileA.name()), contentA);
    byte[] bad = contentB.clone();
    bad[17] ^= 1;
    Files.write(dir.resolve(fileB.name()), bad);
    String url = serve("m1", fileB, contentB);
    assertEquals(1, fetcher(source(url)).fetch());
    assertTrue(log.stream().anyMatch(l -> l.contains(fileB.name()) && l.contains("SHA-256 mismatch")), log.toString());
    assertArrayEquals(contentB, Files.readAllBytes(dir.resolve(fileB.name())));
  }

  @Test
  void unreachableSourceFallsThroughWithOneWarning() throws IOException {
    int closedPort;
    try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      closedPort = s.getLocalPort();
    }
    serve("m2", fileA, contentA);
    String good = serve("m2", fileB, contentB);
    assertEquals(2, fetcher(source("http://127.0.0.1:" + closedPort + "/x/"), source(good)).fetch());
    long warnings = log.stream().filter(l -> l.startsWith("warning:")).count();
    assertEquals(1, warnings, log.toString());
    assertTrue(log.get(0).contains(fileA.name()) && log.get(0).contains("127.0.0.1:" + closedPort), log.get(0));
  }

  @Test
  void corruptDownloadLeavesNothingBehindAndTheNextSourceIsUsed() throws IOException {
    byte[] bad = contentA.clone();
    bad[0] ^= 1;
    serve("bad", fileA, bad);
    serve("bad", fileB, contentB);
    serve("good", fileA, contentA);
    String good = serve("good", fileB, contentB);
    assertEquals(2, fetcher(source(mirror("bad")), source(good)).fetch());
    assertTrue(log.stream().anyMatch(l -> l.contains("SHA-256 mismatch") && l.contains(mirror("bad"))), log.toString());
    assertArrayEquals(contentA, Files.readAllBytes(dir.resolve(fileA.name())));
    assertNoPartFiles();
  }

  @Test
  void truncatedDownloadIsRefused() throws IOException {
    String url = serve("short", fileA, java.util.Arrays.copyOf(contentA, 4000));
    serve("short", fileB, contentB);
    IOException e = assertThrows(IOException.class, () -> fetcher(source(url)).fetch());
    assertTrue(e.getMessage().contains(fileA.name()) && e.getMessage().contains("truncated"), e.getMessage());
    assertFalse(Files.exists(dir.resolve(fileA.name())));
    assertNoPartFiles();
  }

  @Test
  void failureNamesEveryFileAndWhatEachSourceSaid() {
    IOException e = assertThrows(IOException.class, () -> fetcher(source(mirror("empty"))).fetch());
    assertTrue(e.getMessage().contains(fileA.name()), e.getMessage());
    assertTrue(e.getMessage().contains(fileB.name()), e.getMessage());
    assertTrue(e.getMessage().contains("HTTP 404"), e.getMessage());
    assertFalse(Files.exists(dir.resolve(fileA.name())));
  }

  @Test
  void sourceThatDeliversTooMuchIsStoppedAndRefused() throws IOException {
    byte[] longer = java.util.Arrays.copyOf(contentB, contentB.length + 10);
    FileSource s = new FileSource() {
      @Override public String describe() {
        return "test source";
      }

      @Override public InputStream open(DatasetFile f) {
        return new ByteArrayInputStream(f.equals(fileB) ? longer : contentA);
      }

      @Override public void close() {
      }
    };
    IOException e = assertThrows(IOException.class, () -> fetcher(s).fetch());
    assertTrue(e.getMessage().contains("more than the expected"), e.getMessage());
    assertTrue(Files.exists(dir.resolve(fileA.name())), "files that verified stay");
    assertFalse(Files.exists(dir.resolve(fileB.name())));
    assertNoPartFiles();
  }

  @Test
  void verifierTellsMissingTruncatedTooLongAndMismatch() throws IOException {
    Path p = dir.resolve(fileB.name());
    assertEquals(FileVerdict.Status.MISSING, FileVerifier.verify(p, fileB).status());
    Files.write(p, java.util.Arrays.copyOf(contentB, 10));
    assertEquals(FileVerdict.Status.TRUNCATED, FileVerifier.verify(p, fileB).status());
    Files.write(p, java.util.Arrays.copyOf(contentB, contentB.length + 1));
    assertEquals(FileVerdict.Status.TOO_LONG, FileVerifier.verify(p, fileB).status());
    byte[] bad = contentB.clone();
    bad[bad.length - 1] ^= 0x40;
    Files.write(p, bad);
    FileVerdict v = FileVerifier.verify(p, fileB);
    assertEquals(FileVerdict.Status.CHECKSUM_MISMATCH, v.status());
    assertTrue(v.message().contains(fileB.name()) && v.message().contains(fileB.sha256()), v.message());
    Files.write(p, contentB);
    assertTrue(FileVerifier.verify(p, fileB).ok());
  }

  @Test
  void mnistChecksumsAreWellFormed() {
    assertEquals(4, Mnist.FILES.size());
    assertEquals(47_040_016L, Mnist.TRAIN_IMAGES.size());
    assertEquals(60_000L * 28 * 28 + 16, Mnist.TRAIN_IMAGES.size());
    assertEquals(10_000L + 8, Mnist.TEST_LABELS.size());
  }

  private void assertNoPartFiles() throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      List<Path> parts = s.filter(p -> p.getFileName().toString().endsWith(".part")).toList();
      assertTrue(parts.isEmpty(), "temporary files left behind: " + parts);
    }
  }

  private static byte[] gzip(byte[] raw) throws IOException {
    ByteArrayOutputStream bos = new ByteArrayOutputStream();
    try (GZIPOutputStream gz = new GZIPOutputStream(bos)) {
      gz.write(raw);
    }
    return bos.toByteArray();
  }

  private static String sha256(byte[] b) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
    } catch (java.security.NoSuchAlgorithmException e) {
      throw new AssertionError(e);
    }
  }
}
