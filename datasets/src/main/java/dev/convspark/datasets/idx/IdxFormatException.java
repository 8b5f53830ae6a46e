package dev.convspark.datasets.idx;

import java.io.IOException;

/** A file that is not valid IDX: the message names the file and says what was expected and found. */
public class IdxFormatException extends IOException {
  private static final long serialVersionUID = 1L;

  /** An error about {@code source}. */
  public IdxFormatException(String source, String message) {
    super(source + ": " + message);
  }
}
