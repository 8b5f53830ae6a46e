package dev.convspark.tensor.optim;

/**
 * What an optimizer needs to continue exactly where it stopped.
 *
 * @param name         {@code sgd} or {@code adam}
 * @param learningRate the learning rate
 * @param steps        updates applied so far
 * @param moments      per-parameter arrays: none for SGD; first and second moments for Adam
 */
public record OptimizerState(String name, float learningRate, long steps, float[][] moments) {
}
