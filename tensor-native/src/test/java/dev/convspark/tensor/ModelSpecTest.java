package dev.convspark.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.tensor.spec.ModelSpec;
import org.junit.jupiter.api.Test;

/** Built-in specs, the text form, shape inference and the errors of impossible stacks. */
class ModelSpecTest {

  @Test
  void deepMnistHasTheTutorialsShapesAndParameterCount() {
    ModelSpec s = ModelSpec.parse("deep-mnist");
    assertEquals("in28x28x1-conv5x5x32-relu-pool2-conv5x5x64-relu-pool2-flatten-dense1024-relu-dropout-dense10", s.text());
    assertEquals(Shape.image(28, 28, 32), s.outputShapes().get(0));
    assertEquals(Shape.image(7, 7, 64), s.outputShapes().get(5));
    assertEquals(Shape.vector(3136), s.outputShapes().get(6));
    assertEquals(10, s.numClasses());
    long expected = (5 * 5 * 1 * 32 + 32) + (5 * 5 * 32 * 64 + 64) + (3136L * 1024 + 1024) + (1024 * 10 + 10);
    assertEquals(expected, s.paramCount());
    assertEquals(expected, new Network(s).paramCount());
    assertEquals(ModelSpec.WeightInit.TRUNCATED_NORMAL, s.weightInit());
    assertEquals(0.1f, s.biasInit());
  }

  /** The layers' names are the network's, and a network's first layers are a network of their own. */
  @Test
  void layerNamesAreTheEnginesAndTheFirstLayersAreANetwork() {
    ModelSpec s = ModelSpec.parse("deep-mnist");
    java.util.List<String> names = java.util.List.of("conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten3",
        "dense1", "relu4", "dropout5", "dense2");
    assertEquals(names, s.layerNames());
    assertEquals(names, new Network(s).layers().stream().map(dev.convspark.tensor.layers.Layer::name).toList());
    ModelSpec first = s.upTo(10);
    assertEquals("in28x28x1-conv5x5x32-relu-pool2-conv5x5x64-relu-pool2-flatten-dense1024-relu-dropout", first.name());
    assertEquals(1024, first.numClasses());
    assertEquals(s.paramCount() - (1024 * 10 + 10), first.paramCount());
    assertEquals(first.text(), ModelSpec.parse(first.specString()).text());
    assertEquals(7 * 7 * 64, s.upTo(6).numClasses());
    assertEquals(names.subList(0, 6), s.upTo(6).layerNames());
    assertThrows(IllegalArgumentException.class, () -> s.upTo(0));
    assertThrows(IllegalArgumentException.class, () -> s.upTo(12));
  }

  @Test
  void softmaxRegressionIsOneDenseLayerInitialisedToZero() {
    ModelSpec s = ModelSpec.parse("softmax-regression");
    assertEquals(7850, s.paramCount());
    Network net = new Network(s);
    net.initialize(1);
    for (float p : net.params()) {
      assertEquals(0f, p);
    }
  }

  @Test
  void textFormRoundTripsWithOptions() {
    ModelSpec s = ModelSpec.parse("in32x30x3-conv3x3x16:s2:valid-relu-pool3:s2-dense7");
    assertEquals("in32x30x3-conv3x3x16:s2:valid-relu-pool3:s2-flatten-dense7", s.text());
    assertEquals(Shape.image(15, 14, 16), s.outputShapes().get(0));
    assertEquals(Shape.image(8, 7, 16), s.outputShapes().get(2));
    assertEquals(s.text(), ModelSpec.parse(s.text()).text());
    assertEquals("deep-mnist", ModelSpec.parse("deep-mnist").specString());
  }

  @Test
  void truncatedNormalInitStaysWithinTwoStandardDeviationsAndIsSeeded() {
    Network a = new Network(ModelSpec.parse("deep-mnist"));
    Network b = new Network(ModelSpec.parse("deep-mnist"));
    a.initialize(5);
    b.initialize(5);
    assertTrue(java.util.Arrays.equals(a.params(), b.params()), "same seed, same parameters");
    double sum2 = 0;
    int conv1Weights = 5 * 5 * 32;
    for (int i = 0; i < conv1Weights; i++) {
      assertTrue(Math.abs(a.params()[i]) <= 0.2f, "weight beyond two standard deviations: " + a.params()[i]);
      sum2 += a.params()[i] * a.params()[i];
    }
    double std = Math.sqrt(sum2 / conv1Weights);
    assertTrue(std > 0.07 && std < 0.1, "truncated normal(0.1) has std about 0.088, found " + std);
    assertEquals(0.1f, a.params()[conv1Weights], "biases start at 0.1");
    b.initialize(6);
    assertTrue(!java.util.Arrays.equals(a.params(), b.params()), "another seed, other parameters");
  }

  @Test
  void heNormalInitScalesEachLayerByItsFanIn() {
    Network a = new Network(ModelSpec.parse("deep-mnist"));
    Network b = new Network(ModelSpec.parse("deep-mnist"));
    a.initialize(5, ModelSpec.WeightInit.HE_NORMAL, 0f);
    b.initialize(5, ModelSpec.WeightInit.HE_NORMAL, 0f);
    assertTrue(java.util.Arrays.equals(a.params(), b.params()), "same seed, same parameters");
    // conv1 (fan-in 5 * 5 * 1), conv2 (5 * 5 * 32), dense1 (3136), dense2 (1024): weights, then one bias an output.
    int[][] layers = {{25, 32}, {800, 64}, {3136, 1024}, {1024, 10}};
    int o = 0;
    for (int[] l : layers) {
      int weights = l[0] * l[1];
      double bound = 2 * Math.sqrt(2.0 / l[0]);
      double sum2 = 0;
      for (int i = o; i < o + weights; i++) {
        assertTrue(Math.abs(a.params()[i]) <= bound,
            "fan-in " + l[0] + ": weight " + a.params()[i] + " beyond " + bound);
        sum2 += a.params()[i] * a.params()[i];
      }
      // Normal truncated at two standard deviations: 0.88 of the untruncated standard deviation.
      double expected = 0.88 * Math.sqrt(2.0 / l[0]);
      double std = Math.sqrt(sum2 / weights);
      assertTrue(Math.abs(std / expected - 1) < 0.1,
          "fan-in " + l[0] + ": std " + std + ", expected about " + expected);
      for (int i = o + weights; i < o + weights + l[1]; i++) {
        assertEquals(0f, a.params()[i], "biases start at 0");
      }
      o += weights + l[1];
    }
    assertEquals(a.paramCount(), o);
  }

  @Test
  void poolThatShrinksBelowOnePixelFailsNamingTheLayer() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> ModelSpec.parse("in4x4x1-pool2-pool2-pool3:valid-dense10"));
    assertTrue(e.getMessage().contains("layer 3 (pool3:valid)"), e.getMessage());
  }

  @Test
  void denseFedTheWrongSizeFailsNamingTheLayer() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> ModelSpec.parse("in28x28x1-conv5x5x8-pool2-dense1000x10"));
    assertTrue(e.getMessage().contains("layer 3 (dense1000x10)") && e.getMessage().contains("1568"), e.getMessage());
  }

  @Test
  void convAfterDenseAndUnknownTokensFailClearly() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ModelSpec.parse("in784-conv3x3x4"));
    assertTrue(e.getMessage().contains("layer 1 (conv3x3x4)") && e.getMessage().contains("image input"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> ModelSpec.parse("in784-lstm32-dense10"));
    assertTrue(e.getMessage().contains("'lstm32'"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> ModelSpec.parse("conv3x3x4:s0"));
    assertTrue(e.getMessage().contains(">= 1"), e.getMessage());
  }
}
