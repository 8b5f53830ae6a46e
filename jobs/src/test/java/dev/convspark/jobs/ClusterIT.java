package dev.convspark.jobs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.datasets.mnist.MnistArrays;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A real standalone cluster from the Maven jars (ClusterCommand: one Master, one Worker), a
 * {@code train} submitted to it whose executors run in their own JVMs, the model scoring, and the
 * cluster always stopped.
 */
class ClusterIT {

  private static final Path MNIST = MnistArrays.defaultDir().toAbsolutePath();

  @TempDir
  Path tmp;

  @Test
  void trainOnAStandaloneClusterWithExecutorsInTheirOwnJvms() throws Exception {
    int port;
    try (ServerSocket s = new ServerSocket(0)) {
      port = s.getLocalPort();
    }
    Path dir = tmp.resolve("cluster");
    try {
      String url = ClusterCommand.start(dir, 1, 2, "2g", port);
      assertTrue(ClusterCommand.status(dir).stream().allMatch(l -> l.contains("running")), ClusterCommand.status(dir).toString());
      List<String> opts = List.of("--master", url, "--total-executor-cores", "2", "--executor-cores", "1",
          "--executor-memory", "1g", "--conf", "spark.executor.heartbeatInterval=500ms");
      Path run = tmp.resolve("run");
      String data = MNIST.resolve("t10k-images-idx3-ubyte").toString();
      SubmitProcess.Result t = SubmitProcess.run(dir, opts, "train", "--data", data, "--model", "softmax-regression",
          "--optimizer", "sgd", "--learning-rate", "0.5", "--keep-prob", "1", "--max-iter", "4000", "--num-workers", "2",
          "--output", run.toString());
      assertEquals(0, t.exitCode(), t.output());
      // Worker 0 runs in an executor; its progress reaches the driver with the executors' heartbeats.
      assertTrue(t.output().matches("(?s).*\\nstep \\d+/4000  loss .*"), "progress on the driver:\n" + t.output());
      assertTrue(Files.readString(run.resolve("summary.json")).contains("\"num_workers\": 2"));
      // The Worker started each executor as a process of its own, with its own directory and log.
      try (Stream<Path> apps = Files.list(dir.resolve("work-1"))) {
        Path app = apps.filter(p -> p.getFileName().toString().startsWith("app-")).findFirst().orElseThrow();
        try (Stream<Path> executors = Files.list(app)) {
          List<Path> logs = executors.map(e -> e.resolve("stderr")).filter(Files::exists).toList();
          assertEquals(2, logs.size(), "two executor JVMs: " + logs);
        }
      }
      SubmitProcess.Result s = SubmitProcess.run(dir, opts, "score", "--model", run.resolve("model").toString(),
          "--data", data, "--output", tmp.resolve("scores").toString());
      assertEquals(0, s.exitCode(), s.output());
      assertTrue(s.output().contains("scored 10,000 rows"), s.output());
    } finally {
      ClusterCommand.stop(dir);
    }
    assertTrue(ClusterCommand.status(dir).stream().noneMatch(l -> l.contains("running")), "everything stopped");
  }
}
