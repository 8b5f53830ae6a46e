package dev.convspark.datasets.mnist;

/**
 * What a check of one file on disk against its {@link DatasetFile} found.
 *
 * @param status  the outcome
 * @param message a sentence naming the file and, when it is not {@link Status#OK}, what was expected
 *                and what was found
 */
public record FileVerdict(Status status, String message) {

  /** The possible outcomes of a check. */
  public enum Status {
    /** Length and SHA-256 match. */
    OK,
    /** No regular file at that path. */
    MISSING,
    /** The file is shorter than it must be: an interrupted copy. */
    TRUNCATED,
    /** The file is longer than it must be. */
    TOO_LONG,
    /** The length is right but the digest is not: the bytes are corrupt or another file. */
    CHECKSUM_MISMATCH
  }

  /** True when the file is exactly the expected one. */
  public boolean ok() {
    return status == Status.OK;
  }
}
