package dev.convspark.jobs;

/** Small helpers for reading command-line flags. */
final class Args {

  private Args() {
  }

  /** The value after flag {@code name} at {@code args[i]}, or a usage error naming the flag. */
  static String value(String[] args, int i, String name) {
    if (i >= args.length || args[i].startsWith("--")) {
      throw new UsageException(name + " needs a value");
    }
    return args[i];
  }

  /** Parses an integer flag value within [min, max], or a usage error naming the flag. */
  static int intValue(String[] args, int i, String name, int min, int max) {
    return parseInt(value(args, i, name), name, min, max);
  }

  private static int parseInt(String v, String name, int min, int max) {
    try {
      int x = Integer.parseInt(v);
      if (x < min || x > max) {
        throw new UsageException(name + " must be in [" + min + ", " + max + "] but was " + x);
      }
      return x;
    } catch (NumberFormatException e) {
      throw new UsageException(name + " must be an integer but was '" + v + "'");
    }
  }

  /**
   * A comma-separated list of integers within [min, max] ({@code 1,2,4}), in the order given, or a
   * usage error naming the flag and the bad item.
   */
  static java.util.List<Integer> intList(String[] args, int i, String name, int min, int max) {
    String v = value(args, i, name);
    java.util.List<Integer> out = new java.util.ArrayList<>();
    for (String item : v.split(",", -1)) {
      out.add(parseInt(item.trim(), name, min, max));
    }
    return java.util.List.copyOf(out);
  }

  /** A number within [min, max], or a usage error naming the flag and the value. */
  static double doubleValue(String[] args, int i, String name, double min, double max) {
    String v = value(args, i, name);
    double d;
    try {
      d = Double.parseDouble(v);
    } catch (NumberFormatException e) {
      throw new UsageException(name + " must be a number but was '" + v + "'");
    }
    if (!(d >= min && d <= max)) {
      throw new UsageException(name + " must be in [" + min + ", " + max + "] but was " + v);
    }
    return d;
  }
}
