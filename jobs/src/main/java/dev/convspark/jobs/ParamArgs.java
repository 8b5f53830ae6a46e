package dev.convspark.jobs;

import java.util.Locale;
import org.apache.spark.ml.param.BooleanParam;
import org.apache.spark.ml.param.DoubleParam;
import org.apache.spark.ml.param.FloatParam;
import org.apache.spark.ml.param.IntParam;
import org.apache.spark.ml.param.LongParam;
import org.apache.spark.ml.param.Param;
import org.apache.spark.ml.param.Params;

/**
 * Sets Spark ML params from command-line flags: {@code --learning-rate 1e-3} sets
 * {@code learningRate}, {@code --max-iter 500} sets {@code maxIter}, and so on for every param of
 * the target (its {@code explainParams()} lists them). A bad value fails naming the flag.
 */
final class ParamArgs {

  private ParamArgs() {
  }

  /** {@code learningRate} for {@code --learning-rate}. */
  static String paramName(String flag) {
    String s = flag.startsWith("--") ? flag.substring(2) : flag;
    StringBuilder b = new StringBuilder();
    boolean up = false;
    for (char c : s.toCharArray()) {
      if (c == '-') {
        up = true;
      } else {
        b.append(up ? Character.toUpperCase(c) : c);
        up = false;
      }
    }
    return b.toString();
  }

  /** {@code --learning-rate} for {@code learningRate}. */
  static String flag(String param) {
    StringBuilder b = new StringBuilder("--");
    for (char c : param.toCharArray()) {
      if (Character.isUpperCase(c)) {
        b.append('-').append(Character.toLowerCase(c));
      } else {
        b.append(c);
      }
    }
    return b.toString();
  }

  /** Whether {@code flag} names a param of {@code target}. */
  static boolean isParam(Params target, String flag) {
    return flag.startsWith("--") && target.hasParam(paramName(flag));
  }

  /** Sets the param {@code flag} names on {@code target} from {@code value}. */
  @SuppressWarnings("unchecked")
  static void set(Params target, String flag, String value) {
    Param<Object> p = (Param<Object>) target.getParam(paramName(flag));
    Object v;
    try {
      if (p instanceof IntParam) {
        v = Integer.parseInt(value);
      } else if (p instanceof LongParam) {
        v = Long.parseLong(value);
      } else if (p instanceof DoubleParam) {
        v = Double.parseDouble(value);
      } else if (p instanceof FloatParam) {
        v = Float.parseFloat(value);
      } else if ((Object) p instanceof org.apache.spark.ml.param.IntArrayParam) {
        v = value.isBlank() ? new int[0]
            : java.util.Arrays.stream(value.split(",")).mapToInt(x -> Integer.parseInt(x.trim())).toArray();
      } else if ((Object) p instanceof org.apache.spark.ml.param.DoubleArrayParam) {
        v = value.isBlank() ? new double[0]
            : java.util.Arrays.stream(value.split(",")).mapToDouble(x -> Double.parseDouble(x.trim())).toArray();
      } else if (p instanceof BooleanParam) {
        if (!value.equalsIgnoreCase("true") && !value.equalsIgnoreCase("false")) {
          throw new NumberFormatException();
        }
        v = Boolean.parseBoolean(value.toLowerCase(Locale.ROOT));
      } else {
        v = value;
      }
    } catch (NumberFormatException e) {
      boolean list = (Object) p instanceof org.apache.spark.ml.param.IntArrayParam
          || (Object) p instanceof org.apache.spark.ml.param.DoubleArrayParam;
      throw new UsageException(flag + " (param " + p.name() + ") must be " + (list ? "a comma-separated list of numbers"
          : "a number") + " but was '" + value + "'");
    }
    try {
      target.set(p, v);
    } catch (IllegalArgumentException e) {
      throw new UsageException(flag + ": " + e.getMessage());
    }
  }

  /** One line per param of {@code target}: its flag and Spark's own explanation. */
  static String help(Params target) {
    StringBuilder b = new StringBuilder();
    for (Param<?> p : target.params()) {
      b.append("  ").append(String.format("%-26s", flag(p.name()))).append(' ').append(p.doc());
      if (target.hasDefault(p)) {
        Object d = target.getDefault(p).get();
        String shown = d instanceof int[] ints ? join(java.util.Arrays.stream(ints).mapToObj(Integer::toString))
            : d instanceof double[] doubles ? join(java.util.Arrays.stream(doubles).mapToObj(Double::toString))
            : String.valueOf(d);
        b.append(" (default: ").append(shown.isEmpty() ? "none" : shown).append(')');
      }
      b.append('\n');
    }
    return b.toString();
  }

  /** Items as a flag takes them: comma-separated. */
  private static String join(java.util.stream.Stream<String> items) {
    return String.join(",", items.toList());
  }
}
