package dev.convspark.jobs;

/** A command line that cannot be run as given; the launcher prints the message and exits 2. */
final class UsageException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  UsageException(String message) {
    super(message);
  }
}
