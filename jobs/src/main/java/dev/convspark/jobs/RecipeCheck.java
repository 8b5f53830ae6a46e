package dev.convspark.jobs;

import dev.convspark.datasets.mnist.MnistArrays;
import dev.convspark.tensor.backend.Backend;
import dev.convspark.tensor.backend.Backends;
import dev.convspark.tensor.backend.Device;
import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.backend.Precision;
import dev.convspark.tensor.optim.LearningRateSchedule;
import dev.convspark.tensor.optim.Optimizer;
import dev.convspark.tensor.spec.ModelSpec;
import dev.convspark.tensor.train.BatchSampler;
import dev.convspark.tensor.train.Trainer;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Locale;

/**
 * Time to accuracy on the engine alone, without Spark: deep-mnist trained to the end of a recipe on
 * one backend, then its test accuracy, and the training's wall time. For the GPU machine, which
 * has no Spark and no Maven ({@code tensor-native/gpu-check.sh recipe} runs it from the packed
 * jars, and the same recipes on PyTorch beside it); it touches no Spark class.
 *
 * <p>Recipes: {@code tutorial}, TensorFlow's "Deep MNIST for Experts" (20,000 steps of 50, Adam
 * 1e-4, dropout 0.5, the tutorial's initial weights: about 99.2%); {@code short}, four epochs in
 * batches of 400 (600 steps, Adam 3e-3 with 80 steps of linear warm-up and cosine decay, He et
 * al.'s initial weights, dropout 0.5: 99.30-99.36% on the CPU, see docs/training.md).
 *
 * <pre>
 * RecipeCheck --data DIR [--recipe tutorial|short] [--device D] [--precision fp32|tf32]
 *             [--threads N] [--steps N] [--seed S]
 * </pre>
 * {@code --steps} cuts the recipe short (its schedule then decays over those steps): for a quick
 * look, not a result. Prints one table row; exit status 2 for a bad command line, 3 when the
 * device or the precision cannot be used there (the reason printed).
 */
public final class RecipeCheck {

  private RecipeCheck() {
  }

  /** One of the recipes, for {@code steps} steps. */
  record Recipe(String name, int batch, int steps, float learningRate, boolean he, int warmup, boolean cosine) {

    static Recipe of(String name, int steps) {
      return switch (name) {
        case "tutorial" -> new Recipe(name, 50, steps > 0 ? steps : 20_000, 1e-4f, false, 0, false);
        case "short" -> new Recipe(name, 400, steps > 0 ? steps : 600, 3e-3f, true, steps > 0 ? Math.min(80, steps)
            : 80, true);
        default -> throw new UsageException("--recipe must be tutorial or short but was '" + name + "'");
      };
    }
  }

  /** What a recipe gave: test accuracy (a fraction) and the training's seconds. */
  record Result(double accuracy, double seconds) {
  }

  /** Trains {@code r} from {@code seed} on {@code backend} with the MNIST arrays given. */
  static Result run(Backend backend, Recipe r, long seed, MnistArrays train, MnistArrays test) {
    ModelSpec spec = ModelSpec.parse(ModelSpec.DEEP_MNIST);
    try (ModelRunner runner = backend.open(spec)) {
      if (r.he()) {
        dev.convspark.tensor.Network init = new dev.convspark.tensor.Network(spec);
        init.initialize(seed, ModelSpec.WeightInit.HE_NORMAL, 0f);
        runner.copyParametersFrom(init.params());
      } else {
        runner.initialize(seed);
      }
      Optimizer adam = Optimizer.create("adam", r.learningRate(), runner.paramCount());
      LearningRateSchedule schedule = r.cosine() ? LearningRateSchedule.cosine(r.steps())
          : LearningRateSchedule.constant();
      adam.setSchedule(schedule.withWarmup(r.warmup()));
      Trainer trainer = new Trainer(runner, adam, 0.5f, seed);
      BatchSampler sampler = new BatchSampler(train.count(), seed);
      long t0 = System.nanoTime();
      for (int s = 0; s < r.steps(); s++) {
        trainer.step(sampler, train.images(), train.labels(), r.batch(), 1f / r.batch());
      }
      // Each step read its loss back, so only the last update may still be queued here.
      double seconds = (System.nanoTime() - t0) / 1e9;
      return new Result(Trainer.accuracy(runner, test.images(), test.labels(), test.count(), 1000), seconds);
    }
  }

  /** Runs the recipes; exits 0, 2 after a usage error, 3 without a usable GPU (each said in one line). */
  public static void main(String[] args) throws IOException {
    try {
      System.exit(run(args));
    } catch (UsageException e) {
      System.err.println("RecipeCheck: " + e.getMessage());
      System.exit(2);
    } catch (IllegalStateException | IllegalArgumentException e) {
      // No usable GPU for device=gpu, or no TF32 on it: one line naming the setting, as gpu-check's.
      System.err.println("RecipeCheck: " + e.getMessage());
      System.exit(3);
    }
  }

  /** Runs the command line {@code args}; returns the exit status. */
  static int run(String[] args) throws IOException {
    Path data = null;
    String recipe = "tutorial";
    String device = "auto";
    String precision = "fp32";
    int threads = Runtime.getRuntime().availableProcessors();
    int steps = 0;
    long seed = 1;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--data" -> data = Path.of(Args.value(args, ++i, "--data"));
        case "--recipe" -> recipe = Args.value(args, ++i, "--recipe");
        case "--device" -> device = Args.value(args, ++i, "--device");
        case "--precision" -> precision = Args.value(args, ++i, "--precision");
        case "--threads" -> threads = Args.intValue(args, ++i, "--threads", 1, 1024);
        case "--steps" -> steps = Args.intValue(args, ++i, "--steps", 1, 10_000_000);
        case "--seed" -> seed = Args.intValue(args, ++i, "--seed", 0, Integer.MAX_VALUE);
        default -> throw new UsageException("unknown flag " + args[i] + "; usage: RecipeCheck --data DIR"
            + " [--recipe tutorial|short] [--device D] [--precision fp32|tf32] [--threads N] [--steps N] [--seed S]");
      }
    }
    if (data == null) {
      throw new UsageException("--data DIR (the MNIST files, raw or .gz) is needed");
    }
    Recipe r = Recipe.of(recipe, steps);
    Device d;
    Precision p;
    try {
      d = Device.parse(device);
      p = Precision.parse(precision);
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage());
    }
    MnistArrays train = MnistArrays.load(data, true);
    MnistArrays test = MnistArrays.load(data, false);
    try (Backend backend = Backends.open(d, threads, p)) {
      Result res = run(backend, r, seed, train, test);
      System.out.printf(Locale.ROOT, "| %s%s, seed %d | %s | %s | %d x %d | %.2f%% | %.1f | %.0f |%n", r.name(),
          steps > 0 ? " (cut to " + steps + " steps)" : "", seed, backend.describe(), p, r.batch(), r.steps(),
          100 * res.accuracy(), res.seconds(), (double) r.batch() * r.steps() / res.seconds());
    }
    return 0;
  }
}
