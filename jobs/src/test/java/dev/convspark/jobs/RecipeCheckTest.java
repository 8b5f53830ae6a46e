package dev.convspark.jobs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.datasets.mnist.MnistArrays;
import dev.convspark.tensor.backend.CpuBackend;
import java.io.IOException;
import org.junit.jupiter.api.Test;

/** The GPU machine's time-to-accuracy command, here on the CPU and cut short, on the real MNIST files. */
class RecipeCheckTest {

  @Test
  void theShortRecipeCutTo30StepsLearnsOnTheCpu() throws IOException {
    MnistArrays train = MnistArrays.load(MnistArrays.defaultDir(), true);
    MnistArrays test = MnistArrays.load(MnistArrays.defaultDir(), false);
    RecipeCheck.Recipe r = RecipeCheck.Recipe.of("short", 30);
    assertEquals(400, r.batch());
    assertEquals(30, r.warmup());
    try (CpuBackend cpu = CpuBackend.create(2)) {
      RecipeCheck.Result res = RecipeCheck.run(cpu, r, 1, train, test);
      System.out.println("short recipe, 30 steps of 400 on the CPU: " + res);
      // Chance is 10%; 12,000 images with He's weights and Adam reach far more.
      assertTrue(res.accuracy() > 0.6, "test accuracy " + res.accuracy());
      assertTrue(res.seconds() > 0);
    }
  }

  @Test
  void theRecipesAreTheDocumentedOnes() {
    RecipeCheck.Recipe t = RecipeCheck.Recipe.of("tutorial", 0);
    assertEquals(new RecipeCheck.Recipe("tutorial", 50, 20_000, 1e-4f, false, 0, false), t);
    assertEquals(new RecipeCheck.Recipe("short", 400, 600, 3e-3f, true, 80, true), RecipeCheck.Recipe.of("short", 0));
  }

  @Test
  void badCommandLinesAreRefusedNamingTheFlag() {
    UsageException e = assertThrows(UsageException.class, () -> RecipeCheck.run(new String[] {"--recipe", "short"}));
    assertTrue(e.getMessage().contains("--data"), e.getMessage());
    e = assertThrows(UsageException.class, () -> RecipeCheck.run(new String[] {"--data", "x", "--recipe", "long"}));
    assertTrue(e.getMessage().contains("--recipe") && e.getMessage().contains("long"), e.getMessage());
    e = assertThrows(UsageException.class, () -> RecipeCheck.run(new String[] {"--data", "x", "--precision", "fp16"}));
    assertTrue(e.getMessage().contains("precision") && e.getMessage().contains("fp16"), e.getMessage());
    e = assertThrows(UsageException.class, () -> RecipeCheck.run(new String[] {"--data", "x", "--steps", "0"}));
    assertTrue(e.getMessage().contains("--steps"), e.getMessage());
  }
}
