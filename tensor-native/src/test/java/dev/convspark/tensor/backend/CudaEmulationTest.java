package dev.convspark.tensor.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The GPU backend on the emulated CUDA driver ({@code src/test/cuda-emu}, built by
 * {@code cuda-emu.sh}): a {@code libcuda.so.1} that runs convspark's kernels on the CPU, loaded
 * through JCuda in a child JVM. It checks the backend's host code and the kernels' arithmetic
 * against the CPU backend, and the device choices and their errors through a real driver
 * interface; it does not check a GPU ({@link CudaParityTest} and {@code gpu-check.sh} do, where
 * one exists). Skipped, saying so, without g++ or off x86-64 Linux.
 */
class CudaEmulationTest {

  private static Path script;
  private static Path driver;

  @BeforeAll
  static void buildTheDriver() throws IOException, InterruptedException {
    script = Path.of("cuda-emu.sh");
    if (!Files.exists(script)) {
      script = Path.of("tensor-native", "cuda-emu.sh");
    }
    script = script.toAbsolutePath();
    driver = script.getParent().resolve("target/cuda-emu");
    String log = build(driver);
    Assumptions.assumeTrue(!log.startsWith("3:"), log.strip() + ": the GPU backend's host code is not run");
    assertTrue(log.startsWith("0:"), "cuda-emu.sh failed:\n" + log);
  }

  /** Runs cuda-emu.sh into {@code out}, from the kernels in {@code source} if given: "exit:log". */
  private static String build(Path out, Path... source) throws IOException, InterruptedException {
    List<String> command = new ArrayList<>(List.of("bash", script.toString(), out.toString()));
    for (Path s : source) {
      command.add(s.toString());
    }
    Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
    String log = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(p.waitFor(5, TimeUnit.MINUTES), "cuda-emu.sh ran over 5 minutes");
    return p.exitValue() + ":" + log;
  }

  private record Run(int exit, String output) {
  }

  /** Runs {@link EmulatedDriverProbe} with the emulated driver and {@code env}. */
  private static Run probe(Map<String, String> env, String... args) throws IOException, InterruptedException {
    return probe(List.of(), env, args);
  }

  /** Runs {@link EmulatedDriverProbe} with the emulated driver, the JVM options {@code jvm} and {@code env}. */
  private static Run probe(List<String> jvm, Map<String, String> env, String... args)
      throws IOException, InterruptedException {
    return probe(driver, jvm, env, args);
  }

  /** As above, with the emulated driver in {@code library}. */
  private static Run probe(Path library, List<String> jvm, Map<String, String> env, String... args)
      throws IOException, InterruptedException {
    List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "--add-modules", "jdk.incubator.vector", "-Xmx2g"));
    command.addAll(jvm);
    command.addAll(List.of("-cp", System.getProperty("java.class.path"), EmulatedDriverProbe.class.getName()));
    command.addAll(List.of(args));
    ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true);
    pb.environment().put("LD_LIBRARY_PATH", library.toString());
    pb.environment().putAll(env);
    Process p = pb.start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(p.waitFor(10, TimeUnit.MINUTES), "the probe ran over 10 minutes");
    return new Run(p.exitValue(), out);
  }

  /** A probe run with the driver's trace on, and the trace's lines. */
  private record Traced(Run run, List<String> trace) {
  }

  /** Runs {@link EmulatedDriverProbe} {@code mode} with {@code CONVSPARK_CUDA_EMU_TRACE} set. */
  private static Traced traced(String mode) throws IOException, InterruptedException {
    return traced(List.of(), Map.of(), mode);
  }

  /** As above, with the JVM options {@code jvm} and the environment {@code env}. */
  private static Traced traced(List<String> jvm, Map<String, String> env, String mode)
      throws IOException, InterruptedException {
    Path trace = Files.createTempFile("cuda-emu-trace", ".txt");
    try {
      Map<String, String> all = new java.util.HashMap<>(env);
      all.put("CONVSPARK_CUDA_EMU_TRACE", trace.toString());
      Run r = probe(jvm, all, mode);
      assertEquals(0, r.exit(), r.output());
      return new Traced(r, Files.readAllLines(trace));
    } finally {
      Files.deleteIfExists(trace);
    }
  }

  /**
   * Both routes of kernels ({@link CudaBackend#KERNELS_PROPERTY}): the wide tiles with the
   * convolutions gathering their windows, and the 64 x 64 tiles with im2col and col2im; the 8
   * products on random shapes ({@link GpuCheck#productParity}) and every layer check.
   */
  @Test
  void theGpuBackendMatchesTheCpuOnTheEmulatedDriver() throws IOException, InterruptedException {
    for (String route : new String[] {"wide", "classic"}) {
      Run r = probe(List.of("-D" + CudaBackend.KERNELS_PROPERTY + "=" + route), Map.of(), "parity");
      System.out.println(r.output());
      assertEquals(0, r.exit(), r.output());
      assertTrue(r.output().contains("GPU: gpu:0 (convspark CUDA emulator (CPU), CUDA driver 12.0"
          + (route.equals("wide") ? ")" : ", classic kernels)")), r.output());
      int checks = parityChecks();
      assertEquals(checks, r.output().lines().filter(l -> l.endsWith("| yes |")).count(), r.output());
    }
  }

  /**
   * The wide route's direct convolutions where Winograd's would take them
   * ({@link CudaBackend#WINOGRAD_PROPERTY} false: what {@code gpu-check.sh}'s {@code direct} rows
   * time): every layer stack with a 5 x 5 convolution, in float32 (TF32 checks them too, as it
   * keeps the direct products).
   */
  @Test
  void withoutWinogradTheDirectConvolutionsMatchTheCpuToo() throws IOException, InterruptedException {
    List<String> specs = GpuCheck.PARITY.stream().map(GpuCheck.Parity::spec).filter(s -> s.contains("conv5x5")).toList();
    assertTrue(specs.size() >= 4, specs.toString());
    List<String> args = new ArrayList<>(List.of("layers"));
    args.addAll(specs);
    Run r = probe(List.of("-D" + CudaBackend.WINOGRAD_PROPERTY + "=false"), Map.of(), args.toArray(String[]::new));
    System.out.println(r.output());
    assertEquals(0, r.exit(), r.output());
    assertTrue(r.output().contains("GPU: gpu:0 (convspark CUDA emulator (CPU), CUDA driver 12.0, no Winograd)"),
        r.output());
    assertEquals(3L * specs.size(), r.output().lines().filter(l -> l.endsWith("| yes |")).count(), r.output());
  }

  /**
   * The rows of a parity run: the 8 products, 3 a layer stack (and 2 more, weighted, a stack with
   * dropout), inference in parts, a gradient summed from factors (two), the network's under two
   * optimizers.
   */
  private static int parityChecks() {
    return 8 + GpuCheck.PARITY.size() * 3 + 2 * (int) GpuCheck.PARITY.stream().filter(p -> p.spec().contains("dropout"))
        .count() + GpuCheck.INFERENCE_IMAGES.length + 2 + 2 * (1 + 3);
  }

  /**
   * TF32 (the wide products through WMMA, which the emulated driver computes with each input
   * rounded to TF32): every check within {@link Precision#TF32_TOLERANCE}, and the layers' forward
   * passes visibly off float32's (rounded inputs), yet within 1e-3.
   */
  @Test
  void inTf32TheGpuBackendMatchesTheCpuWithinTheLooserTolerance() throws IOException, InterruptedException {
    Run r = probe(Map.of(), "parity", "tf32");
    System.out.println(r.output());
    assertEquals(0, r.exit(), r.output());
    assertTrue(r.output().contains("GPU: gpu:0 (convspark CUDA emulator (CPU), CUDA driver 12.0, TF32)"), r.output());
    int checks = parityChecks();
    assertEquals(checks, r.output().lines().filter(l -> l.endsWith("| yes |")).count(), r.output());
    List<Double> conv2 = r.output().lines().filter(l -> l.startsWith("| in14x14x32-conv5x5x64-dense10 (batch 50): logits"))
        .map(l -> Double.parseDouble(l.split(" \\| ")[1])).toList();
    assertEquals(1, conv2.size(), r.output());
    assertTrue(conv2.get(0) > 1e-5 && conv2.get(0) < 1e-3, "conv2's logits in TF32: " + conv2.get(0));
  }

  /**
   * A driver built from a copy of the kernels in which {@code original} (found once) is replaced by
   * {@code changed}, in {@code target/cuda-emu-mutants/NAME}: the directory of its library.
   */
  private static Path mutant(String name, String original, String changed) throws IOException, InterruptedException {
    String kernels = Files.readString(script.getParent().resolve("src/main/cuda/convspark.cu"));
    int at = kernels.indexOf(original);
    assertTrue(at >= 0 && kernels.indexOf(original, at + 1) < 0,
        "the kernels no longer hold this once, so mutant " + name + " needs updating:\n" + original);
    Path dir = driver.resolveSibling("cuda-emu-mutants").resolve(name);
    Files.createDirectories(dir);
    Files.writeString(dir.resolve("convspark.cu"), kernels.replace(original, changed));
    String log = build(dir.resolve("lib"), dir);
    assertTrue(log.startsWith("0:"), "cuda-emu.sh failed on mutant " + name + ":\n" + log);
    return dir.resolve("lib");
  }

  /**
   * What a GPU would get wrong where a CPU running a block's threads one after another need not:
   * six changed copies of the kernels, each built into a driver of its own, fail their checks.
   * <ul>
   *   <li>A wide product's B tile not written where it is zero (past the end of k): those entries
   *       hold whatever the shared memory held, times A's zeros. On a GPU that may be a NaN; the
   *       driver fills shared memory with NaN before each block, so the product with k of 1 is
   *       NaN (on a CPU, the previous block's finite values gave the right answer).
   *   <li>The products' epilogue reading C when beta is 0 (0 times C): a buffer just allocated
   *       holds whatever was there on a GPU, zeros on a CPU; the driver fills fresh device memory
   *       with NaN, so every product is NaN.
   *   <li>A bias gradient's column sums read by the last warp with no barrier after they are
   *       written: right when the threads take their turns in order, as the driver once ran them
   *       ({@code CONVSPARK_CUDA_EMU_ORDER=forward}), wrong in its default, a shuffled order at
   *       every barrier.
   *   <li>The column sums' barrier written twice, one for the warp that reads the sums and one
   *       for the others: every thread waits, so a CPU running them in turns went on; CUDA
   *       requires a block's threads to reach the same {@code __syncthreads}, and the driver
   *       refuses it, naming the two lines.
   *   <li>TF32 results staged by half of each warp: a GPU leaves a WMMA call that part of a warp
   *       makes undefined; on a CPU each thread computes the whole call, so the other half's
   *       stores were not missed. The driver refuses a warp whose threads made different WMMA
   *       calls between two barriers.
   *   <li>TF32 tiles whose rows are 134 floats apart: WMMA's loads not 32-byte aligned, which the
   *       driver refuses, naming the call (the kernels pad the rows to a multiple of 8 floats).
   * </ul>
   */
  @Test
  void kernelsThatRaceReadUnwrittenSharedMemoryOrSplitABlockOrWarpFailTheirChecks() throws IOException, InterruptedException {
    String store = "if (B_QUADS == WTHREADS || t < B_QUADS) stash<LDB>(b_col<BN>(t, bk), b_k<BN>(t, bk), bk, qb, "
        + "bs[buf]);";
    String zeros = "if (qb.v[0] != 0.f || qb.v[1] != 0.f || qb.v[2] != 0.f || qb.v[3] != 0.f) ";
    Path unwritten = mutant("unwritten", store, store.replace("stash<LDB>", zeros + "stash<LDB>"));
    Run products = probe(unwritten, List.of(), Map.of(), "products");
    assertEquals(1, products.exit(), products.output());
    assertTrue(products.output().contains("| product A^T B 1000 x 96, k 1, lda 1003, ldb 99 | Infinity | NO |"),
        products.output());

    Path beta = mutant("beta-0-reads-c", "  if (beta != 0.f) v += beta * c[o];", "  v += beta * c[o];");
    Run readsC = probe(beta, List.of(), Map.of(), "products");
    assertEquals(1, readsC.exit(), readsC.output());
    assertEquals(8, readsC.output().lines().filter(l -> l.endsWith("| Infinity | NO |")).count(), readsC.output());

    Path race = mutant("race", "  sums[ty][tx] = s;\n  __syncthreads();\n  if (ty == 0 && col < cols) {",
        "  sums[ty][tx] = s;\n  if (ty == 7 && col < cols) {");
    String stack = "in100-dense64-relu-dense10";
    Run inOrder = probe(race, List.of(), Map.of("CONVSPARK_CUDA_EMU_ORDER", "forward"), "layers", stack);
    assertEquals(0, inOrder.exit(), inOrder.output());
    Run shuffled = probe(race, List.of(), Map.of(), "layers", stack);
    assertEquals(1, shuffled.exit(), shuffled.output());
    assertTrue(shuffled.output().contains("| " + stack + " (batch 7): gradients (backward) | Infinity | NO |"),
        shuffled.output());

    Path split = mutant("split-barrier", "  __syncthreads();\n  if (ty == 0 && col < cols) {",
        "  if (ty == 0) {\n    __syncthreads();\n  } else {\n    __syncthreads();\n  }\n  if (ty == 0 && col < cols) {");
    Run barriers = probe(split, List.of(), Map.of(), "layers", stack);
    assertTrue(barriers.exit() != 0, barriers.output());
    assertTrue(barriers.output().contains("column_sums: block ("), barriers.output());
    assertTrue(barriers.output().contains("): its threads waited at different __syncthreads (lines "), barriers.output());

    String staged = "wmma::store_matrix_sync(stage[warp], acc[i][j], 16, wmma::mem_row_major);";
    Path halfWarp = mutant("half-warp", staged, "if (lane < 16) " + staged);
    Run lanes = probe(halfWarp, List.of(), Map.of(), "products", "tf32");
    assertTrue(lanes.exit() != 0, lanes.output());
    assertTrue(lanes.output().contains("convspark CUDA emulator: sgemm_wide_tf32: block ("), lanes.output());
    assertTrue(lanes.output().contains("): the threads of a warp made different WMMA calls between two barriers"),
        lanes.output());

    Path misaligned = mutant("misaligned", "constexpr int LDA = TF32 ? WM + 8 : WM + WP;",
        "constexpr int LDA = TF32 ? WM + 6 : WM + WP;");
    Run tf32 = probe(misaligned, List.of(), Map.of(), "products", "tf32");
    assertTrue(tf32.exit() != 0, tf32.output());
    assertTrue(tf32.output().contains("cuda-emu: wmma::load_matrix_sync at "), tf32.output());
    assertTrue(tf32.output().contains(" with ldm 134: the pointer must be 32-byte aligned and ldm a multiple of 4 "
        + "floats"), tf32.output());
  }

  /**
   * The gathering loaders divide once per block and then step their positions (a window's entry,
   * an output pixel) from slice to slice; the emulated driver checks every quad's kept position
   * against the one division gives. A copy of the kernels whose weight gradient steps its output
   * pixels by half a slice is refused, saying so, where a GPU would sum the wrong pixels.
   */
  @Test
  void aLoaderThatLosesItsPlaceAlongKIsRefused() throws IOException, InterruptedException {
    String step = "for (int e = 0; e < 2; e++) px[e].advance(WK, win.oh, win.ow);";
    Path lost = mutant("lost-place", step, step.replace("advance(WK,", "advance(WK / 2,"));
    Run r = probe(lost, List.of(), Map.of(), "layers", "in12x12x3-conv3x3x8-dense10");
    assertTrue(r.exit() != 0, r.output());
    assertTrue(r.output().contains("cuda-emu: a loader's kept position is not where its slice is, in fetch (block "),
        r.output());
  }

  /**
   * A batch too large for the GPU's memory (the emulated driver's, 400 MiB here): the step fails
   * naming the GPU, the batch, what was asked for and what was free
   * ({@link GpuOutOfMemoryException}); what the failed step had allocated is given back, so that
   * the next, smaller step and inference run, and give to the bit what they give where the large
   * batch was never tried.
   */
  @Test
  void aBatchTooLargeForTheGpuFailsSayingSoAndLosesNothing() throws IOException, InterruptedException {
    Map<String, String> small = Map.of("CONVSPARK_CUDA_EMU_MEMORY", "400");
    Run tried = probe(small, "oom", "50", "2000", "50");
    Run plain = probe(small, "oom", "50", "50");
    assertEquals(0, tried.exit(), tried.output());
    assertEquals(0, plain.exit(), plain.output());
    List<String> lines = tried.output().lines().filter(l -> l.startsWith("training") || l.startsWith("inference"))
        .toList();
    assertEquals(4, lines.size(), tried.output());
    String failure = lines.get(1);
    assertTrue(failure.startsWith("training at batch 2000 failed: gpu:0 (convspark CUDA emulator (CPU), CUDA driver "
        + "12.0) is out of memory for a training step on a batch of 2000 images: "), failure);
    assertTrue(failure.matches(".*: [0-9.]+ MiB more were asked for, with [0-9.]+ MiB of its 400.0 MiB free; smaller "
        + "batches need less; another process on the same GPU may hold some of it \\(asked [0-9]+, free [0-9]+, "
        + "total 419430400\\)"), failure);
    List<String> rest = new ArrayList<>(lines);
    rest.remove(1);
    assertEquals(plain.output().lines().filter(l -> l.startsWith("training") || l.startsWith("inference")).toList(),
        rest, tried.output());
    assertTrue(rest.get(2).startsWith("inference on 100 images: logits[0] "), tried.output());
  }

  /**
   * Inference of many images goes to the GPU in parts of at least
   * {@link CudaBackend#INFERENCE_PART_PROPERTY} images (400 by default): 1,000 images in two parts of
   * 500; 2,500 in chunks of 1,024, 1,024 and 452, the first two in parts of 512, the last whole; each
   * part's logits come back on their own copy into pinned memory. In parts of at least 256 (1,000
   * images in parts of 334, 334 and 332), the host's first wait is for part 0's upload alone,
   * before part 0's kernels have run (the driver runs queued work only when a wait needs it), so it
   * stages part 2 while the GPU runs part 0. The logits match the CPU's
   * ({@link GpuCheck#inferenceParity}), which they would not if the host refilled a half of the
   * pinned memory before the copy from it was made, or read the logits before they came back.
   * {@code 0} sends each chunk whole, as before, and the property's other values are refused
   * naming it.
   */
  @Test
  void inferenceOfManyImagesGoesInPartsStagedWhileTheGpuRunsThePartBefore() throws IOException, InterruptedException {
    int image = 12 * 12 * 3 * 4;
    // Per setting: the images of each upload and how many, then of each part's logits, for 1,000
    // images and for 2,500.
    Map<String, Map<Integer, Long>> parts = Map.of(
        "", Map.of(500, 2L, 512, 4L, 452, 1L),
        "256", Map.of(334, 2L, 332, 1L, 256, 8L, 452, 1L),
        "0", Map.of(1000, 1L, 1024, 2L, 452, 1L));
    for (Map.Entry<String, Map<Integer, Long>> setting : parts.entrySet()) {
      String part = setting.getKey();
      Traced t = traced(part.isEmpty() ? List.of() : List.of("-D" + CudaBackend.INFERENCE_PART_PROPERTY + "=" + part),
          Map.of(), "inference");
      System.out.println(t.run().output());
      assertEquals(0, t.run().exit(), t.run().output());
      List<String> trace = t.trace();
      for (Map.Entry<Integer, Long> e : setting.getValue().entrySet()) {
        for (String copy : new String[] {"htod " + e.getKey() * image, "dtoh " + e.getKey() * 40}) {
          assertEquals(e.getValue(), trace.stream().filter(copy::equals).count(), part + ": " + copy + " in:\n"
              + String.join("\n", trace));
        }
      }
      assertEquals(part.equals("0"), trace.stream().noneMatch("event"::equals), String.join("\n", trace));
      if (part.equals("256")) {
        List<String> first = trace.subList(trace.indexOf("htod " + 334 * image), trace.size());
        assertEquals(List.of("htod " + 334 * image, "event", "sync"), first.subList(0, 3), String.join("\n", first));
        assertTrue(first.get(3).startsWith("launch "), String.join("\n", first));
      }
    }
    Run refused = probe(List.of("-D" + CudaBackend.INFERENCE_PART_PROPERTY + "=-1"), Map.of(), "open", "gpu");
    assertTrue(refused.output().contains("gpu failed: " + CudaBackend.INFERENCE_PART_PROPERTY + "=-1: expected a whole"
        + " number of images from 0 up (0: each batch whole)"), refused.output());
  }

  /**
   * Inference on a GPU with too little memory for its chunk of images (30 MiB here, for 100
   * images sent whole, and for 800 sent in two parts of 400): it says so in a warning, goes on with
   * half as many images at a time, down as far as needed, and gives the logits that a GPU with room
   * gives (within float32's rounding: smaller products are tiled and split otherwise).
   */
  @Test
  void inferenceWithTooLittleGpuMemoryGoesOnWithSmallerChunks() throws IOException, InterruptedException {
    for (int images : new int[] {100, 800}) {
      Run room = probe(Map.of(), "oom", "--infer", String.valueOf(images));
      Run tight = probe(Map.of("CONVSPARK_CUDA_EMU_MEMORY", "30"), "oom", "--infer", String.valueOf(images));
      assertEquals(0, room.exit(), room.output());
      assertEquals(0, tight.exit(), tight.output());
      assertTrue(tight.output().contains("is out of memory for inference, " + images + " images at a time"
          + (images >= 800 ? " (in parts of " + images / 2 + ")" : "") + ": "), tight.output());
      assertTrue(tight.output().contains("; inference goes on " + images / 2 + " images at a time"), tight.output());
      assertTrue(!room.output().contains("inference goes on"), room.output());
      double[] sums = new double[2];
      int i = 0;
      for (Run r : new Run[] {room, tight}) {
        String line = r.output().lines().filter(l -> l.startsWith("inference on " + images + " images: ")).findFirst()
            .orElseThrow(() -> new AssertionError(r.output()));
        sums[i++] = Double.parseDouble(line.substring(line.indexOf("sum of |logits| ") + 16));
      }
      assertTrue(Math.abs(sums[1] - sums[0]) < 1e-5 * sums[0], sums[0] + " with room, " + sums[1] + " in 30 MiB");
    }
  }

  @Test
  void tf32IsRefusedWhereTheGpuHasNoTensorCoresForIt() throws IOException, InterruptedException {
    Run turing = probe(Map.of("CONVSPARK_CUDA_EMU_CC", "75"), "tf32");
    for (String device : new String[] {"gpu", "auto"}) {
      assertTrue(turing.output().contains(device + " tf32 failed: precision=tf32: gpu:0 (convspark CUDA emulator (CPU))"
          + " has compute capability 7.5, and TF32 needs the tensor cores of 8.0 or newer; precision=fp32 runs on it"),
          turing.output());
    }
    Run classic = probe(List.of("-D" + CudaBackend.KERNELS_PROPERTY + "=classic"), Map.of(), "tf32");
    assertTrue(classic.output().contains("gpu tf32 failed: precision=tf32: " + CudaBackend.KERNELS_PROPERTY
        + "=classic has no TF32 kernels"), classic.output());
    Run ampere = probe(Map.of("CONVSPARK_CUDA_EMU_CC", "80"), "tf32");
    assertTrue(ampere.output().contains("auto tf32 -> gpu:0 (convspark CUDA emulator (CPU), CUDA driver 12.0, TF32)"),
        ampere.output());
  }

  @Test
  void anUnknownRouteOfKernelsIsRefusedNamingTheProperty() throws IOException, InterruptedException {
    Run r = probe(List.of("-D" + CudaBackend.KERNELS_PROPERTY + "=fast"), Map.of(), "open", "gpu", "auto");
    for (String device : new String[] {"gpu", "auto"}) {
      assertTrue(r.output().contains(device + " failed: " + CudaBackend.KERNELS_PROPERTY + "=fast: expected wide or classic"),
          r.output());
    }
    Run graphs = probe(List.of("-D" + CudaBackend.GRAPHS_PROPERTY + "=yes"), Map.of(), "open", "gpu");
    assertTrue(graphs.output().contains("gpu failed: " + CudaBackend.GRAPHS_PROPERTY + "=yes: expected true or false"),
        graphs.output());
    Run winograd = probe(List.of("-D" + CudaBackend.WINOGRAD_PROPERTY + "=on"), Map.of(), "open", "gpu");
    assertTrue(winograd.output().contains("gpu failed: " + CudaBackend.WINOGRAD_PROPERTY + "=on: expected true or false"),
        winograd.output());
  }

  /**
   * What deep-mnist training steps at batch 50 ask of the device, as the driver traced them:
   * only the batch goes in (images; labels with the samples' places and the step's seeds and
   * scale), only the per-sample loss and hits come out, the host waits once (that copy), nothing
   * is allocated or cleared (max pooling's backward pass gathers, as deep-mnist's windows do not
   * overlap), and no block of a matrix product (sgemm, or a wide-tile kernel) sums more than 1,024
   * of k (unsplit, a convolution's weight gradient summed all 39,200 rows of conv1 in one block,
   * on one multiprocessor). With CUDA graphs ({@link CudaBackend#GRAPHS_PROPERTY}), the second
   * step is captured and every step from then on is one graph launch, whose operations are, line
   * for line, what a step launched kernel by kernel queues; the losses and the parameters come out
   * the same bit for bit, so each replay draws its own step's dropout masks. Where the driver
   * refuses the capture, the backend says so once and launches kernel by kernel.
   */
  @Test
  void aTrainingStepMovesOnlyTheBatchAndWaitsOnce() throws IOException, InterruptedException {
    Map<String, String> outcomes = new java.util.HashMap<>();
    Map<String, List<List<String>>> steps = new java.util.HashMap<>();
    for (String mode : new String[] {"off", "on", "refused"}) {
      boolean graphs = mode.equals("on");
      Run r = traced(List.of("-D" + CudaBackend.GRAPHS_PROPERTY + "=" + !mode.equals("off")),
          mode.equals("refused") ? Map.of("CONVSPARK_CUDA_EMU_GRAPHS", "0") : Map.of(), "step").run();
      String out = r.output();
      assertEquals(mode.equals("refused") ? 1 : 0, out.lines().filter(l -> l.contains("the CUDA driver refused to capture"
          + " a training step as a graph (CUDA_ERROR_NOT_SUPPORTED); steps are launched kernel by kernel")).count(), out);
      String trainer = between(out, "== trainer\n", "== trainer again\n");
      String again = between(out, "== trainer again\n", "== alone\n");
      String alone = out.substring(out.indexOf("== alone\n") + 9);
      outcomes.put(mode, out.lines().filter(l -> l.startsWith("losses: ")).findFirst().orElseThrow());
      List<List<String>> device = new ArrayList<>();
      for (String step : new String[] {trainer, again, alone}) {
        List<String> lines = step.lines().toList();
        // The images, then the labels, the samples' indices, the dropout seed and the samples' loss scales.
        assertEquals(List.of("htod 156800", "htod " + 4 * (50 + 2 * 50 + 2 + 50)), lines.stream().filter(l -> l.startsWith("htod")).toList(), step);
        assertEquals(List.of("dtoh 600"), lines.stream().filter(l -> l.startsWith("dtoh")).toList(), step);
        assertTrue(lines.stream().noneMatch(l -> l.startsWith("sync") || l.startsWith("alloc") || l.startsWith("dtod")
            || l.startsWith("memset")), step);
        int deepest = 0;
        for (String l : lines) {
          String[] w = l.split(" ");
          // Every product kernel's arguments end with C, ldc, the share of k a block sums, bias, relu.
          if (w[0].equals("launch") && w[1].matches("sgemm|(sgemm_wide|conv_forward|conv_weight_grad|conv_input_grad|winograd_product)(_n32)?")) {
            deepest = Math.max(deepest, Integer.parseInt(w[w.length - 3]));
          }
        }
        assertTrue(deepest > 0 && deepest <= 64 * 16, "a block summed k over " + deepest + ":\n" + step);
        // What the step queued before its one wait, less the graph's own lines.
        List<String> queued = lines.subList(0, lines.indexOf("dtoh 600"));
        device.add(queued.stream().filter(l -> !l.startsWith("graph ") && !l.startsWith("capture ")).toList());
        List<String> graphLines = queued.stream().filter(l -> l.startsWith("graph ") || l.startsWith("capture ")).toList();
        if (!graphs) {
          assertEquals(List.of(), graphLines, step);
        } else {
          int nodes = queued.size() - graphLines.size();
          assertEquals(step == trainer ? List.of("capture " + nodes, "graph " + nodes) : List.of("graph " + nodes),
              graphLines, step);
          assertEquals("graph " + nodes, queued.get(queued.size() - nodes - 1), step);
        }
      }
      assertTrue(alone.lines().anyMatch(l -> l.startsWith("launch scale ")), alone);
      steps.put(mode, device);
      if (mode.equals("off")) {
        System.out.println("one deep-mnist training step at batch 50 on the GPU backend (emulated driver's trace), "
            + trainer.lines().filter(l -> l.startsWith("launch")).count() + " launches:\n" + trainer);
      }
    }
    for (String mode : new String[] {"on", "refused"}) {
      assertEquals(steps.get("off"), steps.get(mode), mode);
      assertEquals(outcomes.get("off"), outcomes.get(mode), mode);
    }
    // The second trainer step and the worker's step differ in the loss's scale and the seed alone.
    assertEquals(steps.get("on").get(1), steps.get("on").get(2));
  }

  private static String between(String s, String from, String to) {
    int a = s.indexOf(from);
    int b = s.indexOf(to);
    assertTrue(a >= 0 && b > a, "'" + from.strip() + "' then '" + to.strip() + "' in:\n" + s);
    return s.substring(a + from.length(), b);
  }

  /**
   * The profile {@code gpu-check.sh} prints: every launch of a profiled step is timed by its own
   * pair of events (the emulated driver records them when called, so each pair brackets the
   * kernel's run on the CPU), grouped by kernel and shape, with a matrix product's GFLOP/s.
   */
  @Test
  void theProfileTimesEveryLaunchOfAStep() throws IOException, InterruptedException {
    List<String[]> rows = profiled("profile", "a deep-mnist step at batch 50");
    int launches = rows.stream().mapToInt(w -> Integer.parseInt(w[1])).sum();
    assertTrue(launches >= 30, String.valueOf(launches));
    for (String[] w : rows) {
      if (w[0].startsWith("winograd_product 2450x64, k 32")) {
        // conv2's forward pass by Winograd: 36 products of its 2,450 tiles (50 images of 7 x 7)
        // by 32 channels and 64 filters, 2 m n k floating-point operations each.
        double micros = Double.parseDouble(w[2]);
        assertEquals(36 * 2.0 * 2450 * 64 * 32 / micros / 1e3, Double.parseDouble(w[3]), 1e-3 * Double.parseDouble(w[3]));
      }
    }
    assertTrue(rows.stream().anyMatch(w -> w[0].equals("winograd_product 2450x64, k 32, 36 points")), names(rows));
    // conv2's input gradient: the same plan over dy, 64 channels to 32, in 128 x 32 tiles; with the
    // transforms of the input and the output (each twice: forward and back) and of the weights.
    assertTrue(rows.stream().anyMatch(w -> w[0].equals("winograd_product_n32 2450x32, k 64, 36 points")), names(rows));
    for (String transform : new String[] {"winograd_input", "winograd_output", "winograd_weights"}) {
      assertEquals(2, rows.stream().filter(w -> w[0].startsWith(transform + ",")).mapToInt(w -> Integer.parseInt(w[1]))
          .sum(), transform + " in " + names(rows));
    }
    // conv1 (one channel) by its direct product in 32-column tiles; conv2's direct products gone.
    assertTrue(rows.stream().anyMatch(w -> w[0].startsWith("conv_forward_n32 39200x32, k 25")), names(rows));
    assertTrue(rows.stream().noneMatch(w -> w[0].matches("(conv_forward|conv_input_grad) 9800x.*|col2im.*|im2col.*")),
        names(rows));
  }

  /**
   * The inference profile {@code gpu-check.sh} prints, as the step's: two forward passes of 100
   * images; the forward pass's kernels alone, nothing of a backward pass or an update.
   */
  @Test
  void theInferenceProfileTimesEveryLaunchOfABatch() throws IOException, InterruptedException {
    List<String[]> rows = profiled("profile-infer", "deep-mnist inference, 100 images,");
    assertTrue(rows.stream().anyMatch(w -> w[0].startsWith("conv_forward_n32 78400x32, k 25")), names(rows));
    assertTrue(rows.stream().anyMatch(w -> w[0].equals("winograd_product 4900x64, k 32, 36 points")), names(rows));
    assertTrue(rows.stream().noneMatch(w -> w[0].matches("(conv_weight_grad|conv_input_grad|col2im|im2col|adam|dropout"
        + "|softmax_xent|column_sums|max_pool_backward).*")), names(rows));
  }

  /**
   * The rows (kernel, launches, us, GFLOP/s) the probe in {@code mode} prints for two profiled
   * steps or passes, checked against the driver's trace: an event before and after each launch,
   * and a time for every kernel.
   */
  private static List<String[]> profiled(String mode, String what) throws IOException, InterruptedException {
    Traced t = traced(mode);
    Run r = t.run();
    System.out.println("profile of " + what + " on the emulated driver (CPU times):\n" + r.output());
    List<String[]> rows = r.output().lines().filter(l -> l.contains(" | ")).map(l -> l.split(" \\| ")).toList();
    int launches = rows.stream().mapToInt(w -> Integer.parseInt(w[1])).sum();
    List<String> traced = t.trace();
    List<String> profiled = traced.subList(traced.indexOf("event"), traced.size());
    assertEquals(2 * launches, profiled.stream().filter(l -> l.startsWith("launch ")).count(), r.output());
    assertEquals(4 * launches, profiled.stream().filter(l -> l.equals("event")).count(), r.output());
    for (String[] w : rows) {
      assertTrue(Double.parseDouble(w[2]) > 0, "no time for " + w[0]);
    }
    return rows;
  }

  private static String names(List<String[]> rows) {
    return rows.stream().map(w -> w[0]).collect(java.util.stream.Collectors.joining("\n"));
  }

  @Test
  void deviceSettingsGoThroughTheDriverAndFailSayingWhy() throws IOException, InterruptedException {
    Run one = probe(Map.of(), "open", "auto", "gpu", "gpu:1");
    assertTrue(one.output().contains("auto -> gpu:0 (convspark CUDA emulator (CPU), CUDA driver 12.0)"), one.output());
    assertTrue(one.output().contains("device auto: using gpu:0 (convspark CUDA emulator"), one.output());
    assertTrue(one.output().contains("gpu -> gpu:0 ("), one.output());
    assertTrue(one.output().contains("gpu:1 failed: device=gpu:1: gpu:1 does not exist (the CUDA driver reports 1 GPU: gpu:0)"),
        one.output());

    Run two = probe(Map.of("CONVSPARK_CUDA_EMU_DEVICES", "2"), "open", "gpu:1", "gpu:2");
    assertTrue(two.output().contains("gpu:1 -> gpu:1 (convspark CUDA emulator"), two.output());
    assertTrue(two.output().contains("gpu:2 failed: device=gpu:2: gpu:2 does not exist (the CUDA driver reports 2 GPUs: gpu:0 to gpu:1)"),
        two.output());

    Run none = probe(Map.of("CONVSPARK_CUDA_EMU_DEVICES", "0"), "open", "gpu", "auto");
    assertTrue(none.output().contains("gpu failed: device=gpu: the CUDA driver reports no GPU"), none.output());
    assertTrue(none.output().contains("auto -> cpu ("), none.output());
    assertTrue(none.output().contains("device auto: no usable GPU (the CUDA driver reports no GPU); using cpu"),
        none.output());

    // A Volta GPU (7.0): the PTX targets sm_75, which a driver cannot compile for it.
    Run volta = probe(Map.of("CONVSPARK_CUDA_EMU_CC", "70"), "open", "gpu", "auto");
    assertTrue(volta.output().contains("gpu failed: device=gpu: gpu:0 (convspark CUDA emulator (CPU)) has compute"
        + " capability 7.0, and convspark's kernels are built for 7.5 (Turing, T4) or newer"), volta.output());
    assertTrue(volta.output().contains("device auto: no usable GPU (gpu:0 (convspark CUDA emulator (CPU)) has compute"
        + " capability 7.0"), volta.output());
    assertTrue(volta.output().contains("auto -> cpu ("), volta.output());

    // A CUDA 11.8 driver reads PTX up to ISA 7.8; the kernels declare 8.0.
    Run old = probe(Map.of("CONVSPARK_CUDA_EMU_DRIVER", "11080"), "open", "gpu", "auto");
    assertTrue(old.output().contains("gpu failed: device=gpu: the CUDA driver (version 11.8) refused convspark's kernels"
        + " (CUDA_ERROR_UNSUPPORTED_PTX_VERSION); they need a CUDA 12.0 or newer driver"), old.output());
    assertTrue(old.output().contains("auto -> cpu ("), old.output());
  }

  /**
   * A training step at a batch whose products have more tiles of rows than a grid's y holds
   * (65,535): conv1's 128-row tiles at 11,000 images, 67,375 of them. The grids have their tiles
   * of rows along x (2^31 - 1), which the driver takes; with them along y it refused the step
   * (CUDA_ERROR_INVALID_VALUE, "grid 1 x 67375 x 1 is outside the limits"), as it
   * did the classic route's 64-row tiles from 5,350 images (not run here: its patch matrices at
   * that batch are gigabytes). The kernels are off (the launches alone); the parity checks hold the
   * tiles' arithmetic.
   */
  @Test
  void aBatchWithMoreTilesOfRowsThanAGridsYHoldsIsLaunched() throws IOException, InterruptedException {
    Run wide = probe(Map.of("CONVSPARK_CUDA_EMU_KERNELS", "0"), "large-batch", "wide", "11000");
    assertEquals(0, wide.exit(), wide.output());
    assertTrue(wide.output().contains("wide 11000: launched"), wide.output());
  }

  /**
   * A batch whose largest tensor has more values than the kernels' 32-bit indices reach: conv1's
   * output at 90,000 images is 2,257,920,000. Refused before it is allocated, saying what to
   * change; on a GPU the kernels would have written outside it (a fault, the process's GPU lost).
   */
  @Test
  void aBatchPastTheKernelsIndexIsRefusedSayingSo() throws IOException, InterruptedException {
    Run big = probe(Map.of("CONVSPARK_CUDA_EMU_KERNELS", "0"), "large-batch", "wide", "90000");
    assertEquals(1, big.exit(), big.output());
    assertTrue(big.output().contains("IllegalArgumentException: a GPU tensor of 2,257,920,000 values is more than the"
        + " kernels index (2,147,483,647): fewer images a GPU at a time (a smaller batchSize, or more partitions to"
        + " share it)"), big.output());
  }

  @Test
  void theEmulatedDriverRefusesWhatADriverRefuses() throws IOException, InterruptedException {
    Run r = probe(Map.of(), "misuse");
    assertEquals(0, r.exit(), r.output());
    for (String line : new String[] {"copy of 16 bytes into 16: accepted",
        "copy of 20 bytes into 16: CUDA_ERROR_INVALID_VALUE", "copy from 4 bytes in: CUDA_ERROR_INVALID_VALUE",
        "relu over 4 floats: accepted", "a block of 2048 threads: CUDA_ERROR_INVALID_VALUE",
        "sgemm_wide in a block of 256 threads: CUDA_ERROR_INVALID_VALUE",
        "cuLaunchKernel(sgemm_wide): a block of 256 threads, but the PTX allows it at most 128 (.maxntid, "
            + "__launch_bounds__)",
        "relu's parameters in a buffer of 20 bytes: accepted",
        "relu's parameters in a buffer of 24 bytes: CUDA_ERROR_INVALID_VALUE",
        "a kernel the PTX lacks: CUDA_ERROR_NOT_FOUND",
        "a copy on a thread with no current context: CUDA_ERROR_INVALID_CONTEXT",
        "freeing it twice: CUDA_ERROR_INVALID_VALUE",
        "pinned memory rewritten after its copy was queued: the device got 2.0",
        "pinned memory a queued copy writes, read before a wait: NaN",
        "after a wait for an event: the copy queued before it 3.0, the one after it NaN",
        "after a wait for the device: the copy after the event 3.0",
        "a synchronous copy while a stream is capturing: CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED",
        "ending that capture: CUDA_ERROR_STREAM_CAPTURE_INVALIDATED",
        "a launch on the legacy stream while a stream is capturing: CUDA_ERROR_STREAM_CAPTURE_IMPLICIT",
        "a copy into pageable memory captured: CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED",
        "cuMemcpyDtoHAsync: a copy into pageable memory cannot be captured (only into pinned memory)",
        "another thread's synchronous copy during a thread-local capture: accepted",
        "ending the thread-local capture: accepted",
        "a graph of a copy and a ReLU, launched with 5 then -7 staged: the device got 5.0 then 0.0"}) {
      assertTrue(r.output().contains(line), "expected '" + line + "' in:\n" + r.output());
    }
  }

  /** A run of gpu-check.sh: its exit status, its output, and whether a JVM it started outlived it. */
  private record Script(int exit, String output, boolean leftBehind) {
  }

  /**
   * {@code gpu-check.sh args} from the source tree with the emulated driver, its kernels off (the
   * host's side alone: seconds), and {@code env}; its JVMs are found by a marker in their classpath.
   */
  private static Script gpuCheckScript(Map<String, String> env, String... args) throws IOException, InterruptedException {
    String marker = "/gpu-check-test-" + java.util.UUID.randomUUID();
    List<String> command = new ArrayList<>(List.of("bash", script.resolveSibling("gpu-check.sh").toString()));
    command.addAll(List.of(args));
    ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true);
    pb.environment().put("LD_LIBRARY_PATH", driver.toString());
    pb.environment().put("CONVSPARK_CUDA_EMU_KERNELS", "0");
    pb.environment().put("GPU_CHECK_CLASSPATH", System.getProperty("java.class.path") + ":" + marker);
    pb.environment().put("PATH", Path.of(System.getProperty("java.home"), "bin") + ":" + System.getenv("PATH"));
    pb.environment().putAll(env);
    Process p = pb.start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(p.waitFor(5, TimeUnit.MINUTES), "gpu-check.sh ran over 5 minutes");
    boolean left = ProcessHandle.allProcesses()
        .anyMatch(h -> h.info().commandLine().map(c -> c.contains(marker)).orElse(false));
    return new Script(p.exitValue(), out, left);
  }

  /**
   * On a GPU, a kernel that reads an illegal address leaves its process unable to use the GPU
   * again, and one that never ends leaves it waiting: {@code gpu-check.sh run} runs each of
   * GpuCheck's parts in a JVM of its own, so either costs one part. The driver's
   * {@code CONVSPARK_CUDA_EMU_FAULT} and {@code CONVSPARK_CUDA_EMU_HANG} make TF32's convolution
   * do so: the rows before it and the profile after it come out (the profile beside the rows'
   * rates, read from the results file an earlier JVM wrote), the failed part is named, PyTorch's
   * figures are still reached, and the run fails; the part that hangs is cut off after
   * {@code GPU_CHECK_PART_SECONDS}, leaving no JVM behind.
   */
  @Test
  void aKernelThatFaultsOrNeverEndsCostsGpuCheckOnePart() throws IOException, InterruptedException {
    Script fault = gpuCheckScript(Map.of("CONVSPARK_CUDA_EMU_FAULT", "conv_forward_tf32"), "run", "--part",
        "rows,tf32,profile");
    System.out.println(fault.output());
    assertEquals(1, fault.exit(), fault.output());
    String out = fault.output();
    for (String line : new String[] {"| GPU, batch 50 | ", "| GPU, batch 512 | ",
        "conv_forward_tf32 faults here (CONVSPARK_CUDA_EMU_FAULT)",
        "part 'tf32' failed: jcuda.CudaException: CUDA_ERROR_ILLEGAL_ADDRESS",
        "== gpu-check run: part 'tf32' ended with exit status 1; the next parts run in JVMs of their own",
        "| deep-mnist training step on the GPU, batch 512: kernel |",
        "| deep-mnist inference on the GPU, a batch of 1000 (in parts): kernel |",
        "| deep-mnist inference on the GPU, a batch of 1000 in one part: kernel |"}) {
      assertTrue(out.contains(line), "expected '" + line + "' in:\n" + out);
    }
    assertTrue(out.indexOf("| GPU, batch 512 | ") < out.indexOf("part 'tf32' failed")
        && out.indexOf("part 'tf32' failed") < out.indexOf("batch 512: kernel |"), out);
    assertEquals(1, out.lines().filter(l -> l.startsWith("GPU: gpu:0 (convspark CUDA emulator")).count(), out);
    assertTrue(out.lines().anyMatch(l -> l.matches("\\| the whole step, from the training rate above .*\\| \\| [0-9.]+ \\| \\| \\|")),
        "the profile beside the rows' step time: " + out);
    assertTrue(out.contains("(no PyTorch with CUDA here: no reference figures)") || out.contains("| deep-mnist on "),
        out);

    Script hang = gpuCheckScript(Map.of("CONVSPARK_CUDA_EMU_HANG", "conv_forward_tf32", "GPU_CHECK_PART_SECONDS", "10"),
        "run", "--part", "tf32,rows");
    System.out.println(hang.output());
    assertEquals(1, hang.exit(), hang.output());
    assertTrue(hang.output().contains("== gpu-check run: part 'tf32' cut off after"), hang.output());
    assertTrue(hang.output().indexOf("cut off after") < hang.output().indexOf("| GPU, batch 512 | "), hang.output());
    assertTrue(!hang.leftBehind(), "a JVM of gpu-check.sh outlived it");
  }
}
