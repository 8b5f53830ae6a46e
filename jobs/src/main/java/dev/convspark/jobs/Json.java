package dev.convspark.jobs;

import java.util.List;
import java.util.Locale;
import java.util.Map;

/** Writes JSON objects of numbers, strings, lists and nested objects, for the benchmark and summary files. */
final class Json {

  private Json() {
  }

  static String write(Map<String, ?> m) {
    StringBuilder b = new StringBuilder("{\n");
    int i = 0;
    for (Map.Entry<String, ?> e : m.entrySet()) {
      b.append("  ").append(quote(e.getKey())).append(": ").append(value(e.getValue()));
      b.append(++i < m.size() ? ",\n" : "\n");
    }
    return b.append("}\n").toString();
  }

  private static String value(Object v) {
    if (v == null) {
      return "null";
    } else if (v instanceof Boolean b) {
      return b.toString();
    } else if (v instanceof Number n) {
      double d = n.doubleValue();
      return n instanceof Integer || n instanceof Long ? n.toString()
          : Double.isFinite(d) ? String.format(Locale.ROOT, "%.6g", d) : "null";
    } else if (v instanceof Map<?, ?> m) {
      // A nested object (a row of a table), on one line.
      StringBuilder b = new StringBuilder("{");
      int i = 0;
      for (Map.Entry<?, ?> e : m.entrySet()) {
        b.append(i++ == 0 ? "" : ", ").append(quote(e.getKey().toString())).append(": ").append(value(e.getValue()));
      }
      return b.append("}").toString();
    } else if (v instanceof List<?> l) {
      StringBuilder b = new StringBuilder("[");
      for (int i = 0; i < l.size(); i++) {
        b.append(i == 0 ? "" : ", ").append(value(l.get(i)));
      }
      return b.append("]").toString();
    }
    return quote(v.toString());
  }

  private static String quote(String s) {
    StringBuilder b = new StringBuilder("\"");
    for (char c : s.toCharArray()) {
      switch (c) {
        case '"' -> b.append("\\\"");
        case '\\' -> b.append("\\\\");
        case '\n' -> b.append("\\n");
        default -> {
          if (c < 0x20) {
            b.append(String.format("\\u%04x", (int) c));
          } else {
            b.append(c);
          }
        }
      }
    }
    return b.append('"').toString();
  }
}
