package dev.convspark.datasets.mnist;

import java.io.IOException;
import java.io.InputStream;

/**
 * A place data-set files can be fetched from. The fetcher verifies every byte a source gives, so a
 * source only has to deliver what it believes is the file.
 */
public interface FileSource extends AutoCloseable {

  /** A short description for messages, such as the URL or the package name. */
  String describe();

  /**
   * Opens the uncompressed bytes of {@code file}. The caller closes the stream.
   *
   * @throws IOException when the source cannot deliver the file; the message says why
   */
  InputStream open(DatasetFile file) throws IOException;

  /** Releases what the source holds (temporary downloads, connections). */
  @Override
  void close() throws IOException;
}
