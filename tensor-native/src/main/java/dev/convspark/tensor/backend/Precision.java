package dev.convspark.tensor.backend;

import java.util.Locale;

/**
 * How a GPU multiplies, as a user writes it: {@code fp32} (float32 throughout, the default; the
 * GPU agrees with the CPU within 1e-4) or {@code tf32} (the large matrix products and the
 * convolutions on the tensor cores of GPUs of compute capability 8.0 and newer, their inputs
 * rounded to TF32's 10 bits of mantissa and their sums kept in float32; looser, see
 * {@link #TF32_TOLERANCE}, and meant to be faster: not yet timed on a GPU). The CPU computes in float32 whatever the setting, as PyTorch's
 * {@code allow_tf32} does.
 */
public enum Precision {
  /** float32 throughout. */
  FP32,
  /** TF32 products on the GPU's tensor cores. */
  TF32;

  /**
   * Relative error (the largest difference over the largest value) allowed between the GPU with
   * TF32 and the CPU reference on the parity checks. TF32 keeps 10 bits of each input's 23 (an
   * error of up to 2^-11 of each): the layers' outputs and gradients then differ from the CPU's by
   * 2e-4 to 6e-4 of their largest. Where a ReLU's input lies that close to 0, it takes the other
   * side, and the gradients of the weights before it move by a whole term (3.6e-2 of the largest
   * in a conv-ReLU-dense stack at batch 7 on the emulated driver).
   */
  public static final double TF32_TOLERANCE = 5e-2;

  /**
   * Parses {@code fp32} or {@code tf32} (case-insensitive).
   *
   * @throws IllegalArgumentException naming the setting and what it accepts
   */
  public static Precision parse(String s) {
    String v = s == null ? "" : s.trim().toLowerCase(Locale.ROOT);
    return switch (v) {
      case "fp32" -> FP32;
      case "tf32" -> TF32;
      default -> throw new IllegalArgumentException("precision must be fp32 or tf32 but was '" + s + "'");
    };
  }

  @Override
  public String toString() {
    return name().toLowerCase(Locale.ROOT);
  }
}
