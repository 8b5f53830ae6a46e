package dev.convspark.jobs;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * {@code convspark cluster start|stop|status}: a Spark standalone cluster on 127.0.0.1 run from
 * the Maven jars (no Spark distribution): one {@code Master} and N {@code Worker} JVMs started
 * with this JVM's classpath and module flags, their PIDs recorded under the cluster directory, and
 * {@code stop} ending exactly those processes (a PID whose command line no longer names the
 * Spark class is left alone).
 */
final class ClusterCommand {

  static final String MASTER = "org.apache.spark.deploy.master.Master";
  static final String WORKER = "org.apache.spark.deploy.worker.Worker";
  private static final long START_TIMEOUT_MS = 90_000;

  private ClusterCommand() {
  }

  static String usage() {
    return "usage: cluster start [--workers 1] [--cores N] [--memory 2g] [--port 7077] [--dir data/cluster]\n"
        + "       cluster stop [--dir data/cluster]\n"
        + "       cluster status [--dir data/cluster]\n"
        + "  A standalone Spark Master and Workers on 127.0.0.1 from the Maven jars; submit to it with\n"
        + "  bin/convspark submit --master spark://127.0.0.1:PORT JOB ... Logs, PIDs and the workers'\n"
        + "  executor directories are under --dir.\n";
  }

  static int run(String[] args) throws IOException, InterruptedException {
    if (args.length == 0) {
      throw new UsageException("cluster needs an action: start, stop or status");
    }
    Path dir = Path.of("data/cluster");
    int workers = 1;
    int cores = Runtime.getRuntime().availableProcessors();
    String memory = "2g";
    int port = 7077;
    for (int i = 1; i < args.length; i++) {
      String a = args[i];
      switch (a) {
        case "--dir" -> dir = Path.of(Args.value(args, ++i, a));
        case "--workers" -> workers = Args.intValue(args, ++i, a, 1, 64);
        case "--cores" -> cores = Args.intValue(args, ++i, a, 1, 4096);
        case "--memory" -> {
          memory = Args.value(args, ++i, a);
          if (!memory.matches("\\d+[mMgG]")) {
            throw new UsageException("--memory must look like 512m or 2g but was '" + memory + "'");
          }
        }
        case "--port" -> port = Args.intValue(args, ++i, a, 1, 65535);
        case "-h", "--help" -> {
          System.out.print(usage());
          return 0;
        }
        default -> throw new UsageException("cluster: unknown argument '" + a + "'");
      }
    }
    switch (args[0]) {
      case "start" -> {
        String url = start(dir, workers, cores, memory, port);
        System.out.println("cluster running: " + url + " (logs and PIDs in " + dir + ")");
      }
      case "stop" -> System.out.println(stop(dir) + " processes stopped");
      case "status" -> {
        List<String> lines = status(dir);
        lines.forEach(System.out::println);
        return lines.stream().anyMatch(l -> l.contains("running")) ? 0 : 3;
      }
      case "-h", "--help" -> System.out.print(usage());
      default -> throw new UsageException("cluster: unknown action '" + args[0] + "' (expected start, stop or status)");
    }
    return 0;
  }

  /** Starts a Master and {@code workers} Workers; returns the master URL once every Worker has registered. */
  static String start(Path dir, int workers, int cores, String memory, int port) throws IOException, InterruptedException {
    Files.createDirectories(dir);
    if (status(dir).stream().anyMatch(l -> l.contains("running"))) {
      throw new UsageException("a cluster is already running from " + dir + " (stop it first: cluster stop)");
    }
    if (reachable(port)) {
      throw new UsageException("port " + port + " on 127.0.0.1 is in use; choose another with --port");
    }
    String url = "spark://127.0.0.1:" + port;
    launch(dir, "master", MASTER, List.of("--host", "127.0.0.1", "--port", Integer.toString(port), "--webui-port", "0"));
    long deadline = System.currentTimeMillis() + START_TIMEOUT_MS;
    while (!reachable(port)) {
      if (System.currentTimeMillis() > deadline || !alive(dir, "master")) {
        stop(dir);
        throw new IOException("the Master did not start within " + START_TIMEOUT_MS / 1000 + " s; see " + dir.resolve("master.log"));
      }
      Thread.sleep(200);
    }
    for (int w = 1; w <= workers; w++) {
      Path work = dir.resolve("work-" + w);
      Files.createDirectories(work);
      launch(dir, "worker-" + w, WORKER, List.of("--host", "127.0.0.1", "--cores", Integer.toString(cores), "--memory", memory,
          "--webui-port", "0", "--work-dir", work.toAbsolutePath().toString(), url));
    }
    for (int w = 1; w <= workers; w++) {
      Path log = dir.resolve("worker-" + w + ".log");
      while (!Files.readString(log).contains("Successfully registered with master")) {
        if (System.currentTimeMillis() > deadline || !alive(dir, "worker-" + w)) {
          stop(dir);
          throw new IOException("worker " + w + " did not register with the Master within " + START_TIMEOUT_MS / 1000
              + " s; see " + log);
        }
        Thread.sleep(200);
      }
    }
    return url;
  }

  private static void launch(Path dir, String name, String mainClass, List<String> args) throws IOException {
    List<String> cmd = new ArrayList<>();
    cmd.add(ProcessHandle.current().info().command().orElse("java"));
    // Spark's own logging (INFO to stderr): the log shows when a worker has registered.
    cmd.addAll(jvmFlags().stream().filter(f -> !f.startsWith("-Dlog4j2.configurationFile")).toList());
    cmd.add("-Xmx1g");
    cmd.add("-cp");
    cmd.add(System.getProperty("java.class.path"));
    cmd.add(mainClass);
    cmd.addAll(args);
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true)
        .redirectOutput(dir.resolve(name + ".log").toFile());
    Map<String, String> env = pb.environment();
    sparkEnvironment(env, dir);
    Process p = pb.start();
    Files.writeString(dir.resolve(name + ".pid"), Long.toString(p.pid()));
  }

  /** What a Spark JVM started from Maven jars needs: a SPARK_HOME with a jars folder, the Scala version, loopback. */
  static void sparkEnvironment(Map<String, String> env, Path dir) throws IOException {
    Path home = dir.resolve("spark-home").toAbsolutePath();
    Files.createDirectories(home.resolve("jars"));
    env.put("SPARK_HOME", home.toString());
    env.put("SPARK_SCALA_VERSION", "2.13");
    env.putIfAbsent("SPARK_LOCAL_IP", "127.0.0.1");
  }

  /** The module flags of this JVM (Spark's list and the Vector API), for the JVMs it starts. */
  static List<String> jvmFlags() {
    return ManagementFactory.getRuntimeMXBean().getInputArguments().stream()
        .filter(a -> a.startsWith("--add-") || a.startsWith("-XX:+IgnoreUnrecognized") || a.startsWith("-Dio.netty")
            || a.startsWith("-Djdk.reflect") || a.startsWith("-Dlog4j2.configurationFile"))
        .toList();
  }

  private static boolean reachable(int port) {
    try (Socket s = new Socket()) {
      s.connect(new InetSocketAddress("127.0.0.1", port), 500);
      return true;
    } catch (IOException e) {
      return false;
    }
  }

  /** The process recorded as {@code name}, if it still runs the Spark class it was started as. */
  private static Optional<ProcessHandle> process(Path dir, String name) throws IOException {
    Path pidFile = dir.resolve(name + ".pid");
    if (!Files.exists(pidFile)) {
      return Optional.empty();
    }
    long pid;
    try {
      pid = Long.parseLong(Files.readString(pidFile).trim());
    } catch (NumberFormatException e) {
      return Optional.empty();
    }
    String cls = name.equals("master") ? MASTER : WORKER;
    return ProcessHandle.of(pid).filter(ProcessHandle::isAlive)
        .filter(h -> h.info().arguments().map(a -> List.of(a).contains(cls)).orElse(true));
  }

  private static boolean alive(Path dir, String name) throws IOException {
    return process(dir, name).isPresent();
  }

  private static List<String> names(Path dir) throws IOException {
    List<String> names = new ArrayList<>();
    if (Files.isDirectory(dir)) {
      try (var files = Files.list(dir)) {
        files.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".pid")).sorted()
            .forEach(n -> names.add(n.substring(0, n.length() - 4)));
      }
    }
    return names;
  }

  /** Stops the processes this command started from {@code dir} (workers first); returns how many it stopped. */
  static int stop(Path dir) throws IOException, InterruptedException {
    int stopped = 0;
    List<String> names = names(dir);
    names.sort((a, b) -> a.equals("master") ? 1 : b.equals("master") ? -1 : a.compareTo(b));
    for (String n : names) {
      Optional<ProcessHandle> p = process(dir, n);
      if (p.isPresent()) {
        // Executors the workers started go with them.
        List<ProcessHandle> children = p.get().descendants().toList();
        p.get().destroy();
        try {
          p.get().onExit().get(20, java.util.concurrent.TimeUnit.SECONDS);
        } catch (java.util.concurrent.TimeoutException | java.util.concurrent.ExecutionException e) {
          p.get().destroyForcibly();
        }
        children.forEach(ProcessHandle::destroyForcibly);
        stopped++;
      }
      Files.deleteIfExists(dir.resolve(n + ".pid"));
    }
    return stopped;
  }

  static List<String> status(Path dir) throws IOException {
    List<String> lines = new ArrayList<>();
    for (String n : names(dir)) {
      Optional<ProcessHandle> p = process(dir, n);
      lines.add(n + ": " + (p.isPresent() ? "running, pid " + p.get().pid() : "not running"));
    }
    if (lines.isEmpty()) {
      lines.add("no cluster started from " + dir);
    }
    return lines;
  }
}
