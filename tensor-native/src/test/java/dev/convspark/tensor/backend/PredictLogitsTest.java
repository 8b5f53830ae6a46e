package dev.convspark.tensor.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

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

  @Test
  void aRangeThatTheArraysDoNotHoldIsRefusedSayingWhatWasAsked() {
    ModelSpec spec = ModelSpec.parse(ModelSpec.DEEP_MNIST);
    float[] images = new float[10 * 784];
    try (CpuBackend cpu = CpuBackend.create(1); ModelRunner r = cpu.open(spec)) {
      r.initialize(3);
      IllegalArgumentException past = assertThrows(IllegalArgumentException.class,
          () -> r.predictLogits(images, 8, 3, new float[30]));
      assertEquals("predictLogits: images 8 to 11 of " + spec.name() + " (784 floats each) need 8624 floats, but"
          + " images holds 7840", past.getMessage());
      assertThrows(IllegalArgumentException.class, () -> r.predictLogits(images, -1, 2, new float[20]));
      IllegalArgumentException room = assertThrows(IllegalArgumentException.class,
          () -> r.predictLogits(images, 0, 4, new float[39]));
      assertEquals("predictLogits: 4 images' logits need 40 floats, but logits holds 39", room.getMessage());
    }
  }
}
