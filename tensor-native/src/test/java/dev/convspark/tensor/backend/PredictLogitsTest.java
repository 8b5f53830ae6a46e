package dev.convspark.tensor.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import dev.convspark.tensor.spec.ModelSpec;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Inference on a range of images read from inside a larger array, as a benchmark or an evaluation passes them. */
class PredictLogitsTest {

  @Test
  void aRangeOfImagesGivesTheLogitsOfThoseImagesAlone() {
    ModelSpec spec = ModelSpec.parse(ModelSpec.DEEP_MNIST);
    int size = spec.inputShape().size();
    int classes = spec.numClasses();
    Random rnd = new Random(5);
    float[] images = new float[700 * size];
    for (int i = 0; i < images.length; i++) {
      images[i] = rnd.nextFloat();
    }
    try (CpuBackend cpu = CpuBackend.create(2); ModelRunner r = cpu.open(spec)) {
      r.initialize(3);
      // Within one chunk of the CPU backend (256 images) and across three; from 0 and from inside.
      for (int[] range : new int[][] {{0, 100}, {7, 100}, {0, 600}, {93, 600}, {699, 1}}) {
        int from = range[0];
        int n = range[1];
        float[] want = new float[n * classes];
        r.predictLogits(Arrays.copyOfRange(images, from * size, (from + n) * size), n, want);
        float[] got = new float[n * classes + 3];
        Arrays.fill(got, Float.NaN);
        r.predictLogits(images, from, n, got);
        assertArrayEquals(want, Arrays.copyOf(got, n * classes), "images " + from + " to " + (from + n));
        // Nothing written past the range's logits.
        assertArrayEquals(new float[] {Float.NaN, Float.NaN, Float.NaN}, Arrays.copyOfRange(got, n * classes, got.length));
      }
    }
  }
}
