package dev.convspark.ml.training;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import org.junit.jupiter.api.Test;

/** A barrier task's result as the bytes it travels in, whatever Spark's serializer. */
class TrainResultTest {

  @Test
  void aResultAndAFailureComeBackFromTheirBytes() {
    Validation.History h = new Validation.History(new int[] {2, 4}, new double[] {0.5, 0.4}, new double[] {0.8, 0.9},
        4, false);
    TrainResult r = new TrainResult(new float[] {1.5f, -2f}, new double[] {1, 0.5}, new double[] {0.1, 0.2}, h, 3,
        1.25, 0.5);
    TrainResult back = TrainResult.fromBytes(r.toBytes());
    assertArrayEquals(r.weights(), back.weights());
    assertArrayEquals(r.loss(), back.loss());
    assertArrayEquals(r.accuracy(), back.accuracy());
    assertArrayEquals(h.steps(), back.validation().steps());
    assertEquals(4, back.validation().bestStep());
    assertEquals(3, back.resumedFromStep());
    assertEquals(1.25, back.stepSeconds());
    assertNull(back.failure());

    TrainResult failed = TrainResult.fromBytes(
        TrainResult.failed(new IllegalArgumentException("label 11 in column label is out of range")).toBytes());
    assertEquals(IllegalArgumentException.class, failed.failure().getClass());
    assertEquals("label 11 in column label is out of range", failed.failure().getMessage());
  }
}
