package dev.convspark.ml.training;


/** A failure every worker meets at the same point, so retrying cannot help. */
final class Deterministic extends RuntimeException {
  private static final long serialVersionUID = 1L;
  final RuntimeException failure;

  Deterministic(RuntimeException failure) {
    super(failure.getMessage(), failure);
    this.failure = failure;
  }
}
