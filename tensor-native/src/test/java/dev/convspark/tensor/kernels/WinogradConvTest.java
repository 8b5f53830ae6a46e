package dev.convspark.tensor.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.tensor.Padding;
import org.junit.jupiter.api.Test;

/**
 * The Winograd route's switch and reach; its sums are checked against the reference, on both
 * instruction sets, in {@code KernelParityTest}.
 */
class WinogradConvTest {

  @Test
  void theSwitchTakesTrueOrFalseAndRefusesAnythingElseNamingTheProperty() {
    assertTrue(WinogradConv.enabled("true"));
    assertFalse(WinogradConv.enabled("false"));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> WinogradConv.enabled("yes"));
    assertEquals("convspark.conv.winograd must be true or false but was 'yes'", e.getMessage());
  }

  @Test
  void takesStrideOneFiveByFiveKernelsOverSeveralChannelsOnly() {
    assertTrue(WinogradConv.applies(ConvGeometry.of(14, 14, 32, 5, 5, 1, Padding.SAME)), "MNIST's second layer");
    assertTrue(WinogradConv.applies(ConvGeometry.of(9, 7, 8, 5, 5, 1, Padding.VALID)));
    assertFalse(WinogradConv.applies(ConvGeometry.of(28, 28, 1, 5, 5, 1, Padding.SAME)), "one channel");
    assertFalse(WinogradConv.applies(ConvGeometry.of(14, 14, 32, 3, 3, 1, Padding.SAME)), "3 x 3");
    assertFalse(WinogradConv.applies(ConvGeometry.of(14, 14, 32, 5, 5, 2, Padding.SAME)), "stride 2");
  }

  @Test
  void theInputGradientIsTheForwardPlanOverTheOutputGradient() {
    ConvGeometry g = ConvGeometry.of(14, 14, 32, 5, 5, 1, Padding.SAME);
    WinogradConv forward = WinogradConv.forward(g, 64);
    WinogradConv back = WinogradConv.inputGradient(g, 64);
    assertEquals(49, forward.tiles);
    assertEquals(18, forward.paddedHeight);
    assertEquals(64, back.inChannels);
    assertEquals(32, back.outChannels);
    assertEquals(2, back.padTop, "a full convolution of SAME's output: 4 - 2");
    ConvGeometry valid = ConvGeometry.of(10, 9, 8, 5, 5, 1, Padding.VALID);
    assertEquals(4, WinogradConv.inputGradient(valid, 17).padTop, "VALID's input gradient pads by the kernel less one");
  }
}
