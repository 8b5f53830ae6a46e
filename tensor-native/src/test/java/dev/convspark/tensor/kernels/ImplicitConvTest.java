package dev.convspark.tensor.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The implicit route's switch; its products are checked against the reference in {@code KernelParityTest}. */
class ImplicitConvTest {

  @Test
  void theSwitchTakesTrueOrFalseAndRefusesAnythingElseNamingTheProperty() {
    assertTrue(ImplicitConv.enabled("true"));
    assertFalse(ImplicitConv.enabled("false"));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ImplicitConv.enabled("off"));
    assertEquals("convspark.conv.implicit must be true or false but was 'off'", e.getMessage());
  }
}
