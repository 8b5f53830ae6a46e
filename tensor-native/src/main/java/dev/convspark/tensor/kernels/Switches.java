package dev.convspark.tensor.kernels;

/** The kernels' on/off system properties, for A/B runs: {@code true} or {@code false}, anything else refused. */
final class Switches {

  private Switches() {
  }

  /** {@code value} of {@code property} as a switch; any value but {@code true} or {@code false} is refused, naming the property. */
  static boolean value(String property, String value) {
    if (!value.equals("true") && !value.equals("false")) {
      throw new IllegalArgumentException(property + " must be true or false but was '" + value + "'");
    }
    return value.equals("true");
  }
}
