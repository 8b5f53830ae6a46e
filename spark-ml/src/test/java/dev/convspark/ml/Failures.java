package dev.convspark.ml;

/** Reading failures in tests. */
final class Failures {

  private Failures() {
  }

  /**
   * The messages of {@code e} and of its causes, joined by {@code " | "}: a Spark job's failure
   * wraps the task's exception, whose message is the one a test looks for.
   */
  static String messages(Throwable e) {
    StringBuilder b = new StringBuilder();
    for (Throwable t = e; t != null; t = t.getCause()) {
      b.append(t.getMessage()).append(" | ");
    }
    return b.toString();
  }
}
