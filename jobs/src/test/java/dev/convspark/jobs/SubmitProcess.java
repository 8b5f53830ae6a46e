package dev.convspark.jobs;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/** Runs {@code org.apache.spark.deploy.SparkSubmit} in a child JVM, as {@code bin/convspark submit} does. */
final class SubmitProcess {

  /** Exit status and everything the child printed. */
  record Result(int exitCode, String output) {
  }

  private SubmitProcess() {
  }

  /** The fat jar the package phase built. */
  static Path fatJar() throws IOException {
    try (Stream<Path> s = Files.list(Path.of("target"))) {
      return s.filter(p -> p.getFileName().toString().matches("jobs-.*-all\\.jar")).findFirst()
          .orElseThrow(() -> new IllegalStateException("no jobs-*-all.jar in target: integration tests run after package"))
          .toAbsolutePath();
    }
  }

  static Result run(Path dir, List<String> sparkOptions, String... jobArgs) throws IOException, InterruptedException {
    String cp = System.getProperty("java.class.path");
    String flags = String.join(" ", ClusterCommand.jvmFlags());
    List<String> cmd = new ArrayList<>();
    cmd.add(ProcessHandle.current().info().command().orElse("java"));
    cmd.addAll(ClusterCommand.jvmFlags());
    cmd.add("-Xmx2g");
    cmd.add("-cp");
    cmd.add(cp);
    cmd.add("org.apache.spark.deploy.SparkSubmit");
    cmd.addAll(List.of("--conf", "spark.ui.enabled=false", "--conf", "spark.executor.extraClassPath=" + cp,
        "--conf", "spark.executor.extraJavaOptions=" + flags));
    cmd.addAll(sparkOptions);
    cmd.addAll(List.of("--class", "dev.convspark.jobs.Jobs", fatJar().toString()));
    cmd.addAll(List.of(jobArgs));
    Files.createDirectories(dir);
    Path log = Files.createTempFile(dir, "submit", ".log");
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
    ClusterCommand.sparkEnvironment(pb.environment(), dir);
    Process p = pb.start();
    if (!p.waitFor(10, TimeUnit.MINUTES)) {
      p.destroyForcibly();
      throw new IllegalStateException("spark-submit ran over 10 minutes: " + String.join(" ", jobArgs));
    }
    return new Result(p.exitValue(), Files.readString(log));
  }
}
