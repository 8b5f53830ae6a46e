package dev.convspark.tensor.backend;

import dev.convspark.tensor.spec.ModelSpec;

/**
 * Where the engine computes: the CPU, or (through the same interface) a GPU. A backend opens
 * {@link ModelRunner}s, each holding one replica of a network's parameters, gradients and
 * activations in the backend's memory.
 */
public interface Backend extends AutoCloseable {

  /** A one-line description, e.g. {@code cpu (2 threads, 16-float vectors)}. */
  String describe();

  /** A runner for a network of {@code spec}, parameters zero until set or initialised. */
  ModelRunner open(ModelSpec spec);

  /** Releases threads and device memory. */
  @Override
  void close();
}
