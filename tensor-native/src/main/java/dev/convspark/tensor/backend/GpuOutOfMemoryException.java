package dev.convspark.tensor.backend;

/**
 * The GPU had too little free memory for what a runner was asked to do: its message names the
 * GPU, the work (a training step on a batch of so many images, inference, the model's
 * parameters), the bytes asked for and the GPU's free and total memory. Smaller batches need less;
 * another process on the same GPU may hold what is missing.
 */
public final class GpuOutOfMemoryException extends IllegalStateException {

  private static final long serialVersionUID = 1L;

  private final long requestedBytes;
  private final long freeBytes;
  private final long totalBytes;

  GpuOutOfMemoryException(String message, long requestedBytes, long freeBytes, long totalBytes) {
    super(message);
    this.requestedBytes = requestedBytes;
    this.freeBytes = freeBytes;
    this.totalBytes = totalBytes;
  }

  /** The size of the allocation that failed, in bytes. */
  public long requestedBytes() {
    return requestedBytes;
  }

  /** The GPU's free memory when it failed, in bytes, as the driver reported it (else -1). */
  public long freeBytes() {
    return freeBytes;
  }

  /** The GPU's memory, in bytes, as the driver reported it (-1 if it did not). */
  public long totalBytes() {
    return totalBytes;
  }
}
