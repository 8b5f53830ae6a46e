package dev.convspark.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.tensor.optim.Adam;
import dev.convspark.tensor.optim.LearningRateSchedule;
import dev.convspark.tensor.optim.Optimizer;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** Learning-rate schedules: their factors, their checks, and the optimizers following them. */
class LearningRateScheduleTest {

  @Test
  void factorsFollowTheirDefinitions() {
    LearningRateSchedule p = LearningRateSchedule.piecewise(new int[] {4000, 5200}, new double[] {1, 0.1, 0.01});
    assertEquals(1, p.factor(1));
    assertEquals(1, p.factor(4000));
    assertEquals(0.1, p.factor(4001));
    assertEquals(0.1, p.factor(5200));
    assertEquals(0.01, p.factor(5201));
    LearningRateSchedule c = LearningRateSchedule.cosine(100);
    assertEquals(0.5 * (1 + Math.cos(Math.PI * 0.25)), c.factor(25), 1e-15);
    assertEquals(0.5, c.factor(50), 1e-15);
    assertEquals(0, c.factor(100), 1e-15);
    assertEquals(0, c.factor(150), 1e-15);
    LearningRateSchedule e = LearningRateSchedule.exponential(1000, 0.1);
    assertEquals(0.1, e.factor(1000), 1e-15);
    assertEquals(Math.sqrt(0.1), e.factor(500), 1e-15);
    LearningRateSchedule w = LearningRateSchedule.constant().withWarmup(4);
    assertEquals(0.25, w.factor(1));
    assertEquals(0.75, w.factor(3));
    assertEquals(1, w.factor(4));
    assertEquals(1, w.factor(5));
    assertEquals(0.1 * 4001 / 4002, p.withWarmup(4002).factor(4001), 1e-15, "warm-up multiplies the schedule");
  }

  @Test
  void badSchedulesAreRefusedSayingWhatWasExpected() {
    IllegalArgumentException x = assertThrows(IllegalArgumentException.class,
        () -> LearningRateSchedule.piecewise(new int[] {10}, new double[] {1}));
    assertTrue(x.getMessage().contains("one factor more than boundaries"), x.getMessage());
    x = assertThrows(IllegalArgumentException.class,
        () -> LearningRateSchedule.piecewise(new int[] {10, 10}, new double[] {1, 0.1, 0.01}));
    assertTrue(x.getMessage().contains("increasing"), x.getMessage());
    x = assertThrows(IllegalArgumentException.class,
        () -> LearningRateSchedule.piecewise(new int[] {10}, new double[] {1, Double.NaN}));
    assertTrue(x.getMessage().contains("positive and finite"), x.getMessage());
    x = assertThrows(IllegalArgumentException.class, () -> LearningRateSchedule.cosine(0));
    assertTrue(x.getMessage().contains("decaySteps >= 1"), x.getMessage());
    x = assertThrows(IllegalArgumentException.class, () -> LearningRateSchedule.exponential(10, 1.5));
    assertTrue(x.getMessage().contains("(0, 1]"), x.getMessage());
    x = assertThrows(IllegalArgumentException.class, () -> LearningRateSchedule.constant().withWarmup(-1));
    assertTrue(x.getMessage().contains("warmupSteps"), x.getMessage());
  }

  private static float[] run(String name, LearningRateSchedule schedule, int steps, Optimizer[] out) {
    SplittableRandom g = new SplittableRandom(5);
    float[] p = new float[300];
    for (int i = 0; i < p.length; i++) {
      p[i] = (float) g.nextGaussian();
    }
    Optimizer o = Optimizer.create(name, 1e-2f, p.length);
    if (schedule != null) {
      o.setSchedule(schedule);
    }
    for (int s = 0; s < steps; s++) {
      float[] grad = new float[p.length];
      for (int i = 0; i < p.length; i++) {
        grad[i] = p[i] + (float) g.nextGaussian();
      }
      o.step(p, grad);
    }
    out[0] = o;
    return p;
  }

  @Test
  void optimizersFollowTheScheduleAndAConstantOneChangesNothing() {
    Optimizer[] o = new Optimizer[1];
    for (String name : new String[] {"adam", "sgd"}) {
      assertArrayEquals(run(name, null, 20, o), run(name, LearningRateSchedule.constant(), 20, o), name);
      LearningRateSchedule p = LearningRateSchedule.piecewise(new int[] {10}, new double[] {1, 0.1});
      run(name, p, 11, o);
      assertEquals(1e-3f, o[0].currentLearningRate(), 1e-9f, name + " after the boundary");
      run(name, p, 10, o);
      assertEquals(1e-2f, o[0].currentLearningRate(), name + " at the boundary");
    }
    run("adam", LearningRateSchedule.cosine(40), 10, o);
    double rate = 1e-2 * 0.5 * (1 + Math.cos(Math.PI * 10 / 40));
    assertEquals((float) (rate * Math.sqrt(1 - Math.pow(Adam.BETA2, 10)) / (1 - Math.pow(Adam.BETA1, 10))),
        ((Adam) o[0]).stepSize(), "Adam's step size is the scheduled rate's");
  }

  @Test
  void aRestoredOptimizerGivenTheScheduleContinuesItExactly() {
    LearningRateSchedule s = LearningRateSchedule.piecewise(new int[] {6}, new double[] {1, 0.1}).withWarmup(3);
    Optimizer[] o = new Optimizer[1];
    float[] whole = run("adam", s, 12, o);
    // The same 12 steps, interrupted after 5: state saved, restored, schedule given again.
    SplittableRandom g = new SplittableRandom(5);
    float[] p = new float[300];
    for (int i = 0; i < p.length; i++) {
      p[i] = (float) g.nextGaussian();
    }
    Optimizer first = Optimizer.create("adam", 1e-2f, p.length);
    first.setSchedule(s);
    Optimizer current = first;
    for (int step = 0; step < 12; step++) {
      if (step == 5) {
        current = Optimizer.restore(first.state(), p.length);
        current.setSchedule(s);
      }
      float[] grad = new float[p.length];
      for (int i = 0; i < p.length; i++) {
        grad[i] = p[i] + (float) g.nextGaussian();
      }
      current.step(p, grad);
    }
    assertArrayEquals(whole, p);
  }
}
