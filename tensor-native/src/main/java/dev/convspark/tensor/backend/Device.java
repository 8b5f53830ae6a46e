package dev.convspark.tensor.backend;

import java.util.Locale;

/**
 * Where to compute, as a user writes it: {@code auto} (a GPU when one works, else the CPU),
 * {@code cpu}, {@code gpu} (the first GPU, or the one a scheduler assigned) or {@code gpu:N}
 * (GPU number N).
 *
 * @param kind    auto, cpu or gpu
 * @param ordinal the GPU number for {@code gpu:N}, else -1
 */
public record Device(Kind kind, int ordinal) {

  /** The three kinds of setting. */
  public enum Kind { AUTO, CPU, GPU }

  /** {@code auto}. */
  public static final Device AUTO = new Device(Kind.AUTO, -1);
  /** {@code cpu}. */
  public static final Device CPU = new Device(Kind.CPU, -1);

  /**
   * Parses {@code auto}, {@code cpu}, {@code gpu} or {@code gpu:N} (case-insensitive).
   *
   * @throws IllegalArgumentException naming the setting and what it accepts
   */
  public static Device parse(String s) {
    String v = s == null ? "" : s.trim().toLowerCase(Locale.ROOT);
    switch (v) {
      case "auto":
        return AUTO;
      case "cpu":
        return CPU;
      case "gpu":
        return new Device(Kind.GPU, -1);
      default:
        if (v.startsWith("gpu:")) {
          try {
            int n = Integer.parseInt(v.substring(4));
            if (n >= 0) {
              return new Device(Kind.GPU, n);
            }
          } catch (NumberFormatException e) {
            // falls through to the error below
          }
        }
        throw new IllegalArgumentException("device must be auto, cpu, gpu or gpu:N (N >= 0) but was '" + s + "'");
    }
  }

  /** This device with GPU number {@code n} filled in where none was named (a scheduler's choice). */
  public Device withDefaultOrdinal(int n) {
    return kind == Kind.GPU || kind == Kind.AUTO ? new Device(kind, ordinal >= 0 ? ordinal : n) : this;
  }

  @Override
  public String toString() {
    return kind == Kind.GPU && ordinal >= 0 ? "gpu:" + ordinal : kind.name().toLowerCase(Locale.ROOT);
  }
}
