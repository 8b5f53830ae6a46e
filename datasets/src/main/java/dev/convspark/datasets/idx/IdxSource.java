package dev.convspark.datasets.idx;

import java.io.IOException;
import java.io.InputStream;
import java.nio.channels.Channels;
import java.nio.channels.SeekableByteChannel;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Where an IDX file's bytes come from: a name for messages, its length, and streams that start at
 * any offset. The local file system is one; the Spark source adds Hadoop file systems.
 */
public interface IdxSource {

  /** The file's name or path, for messages. */
  String name();

  /** The file's length in bytes. */
  long length() throws IOException;

  /** A stream over the file's bytes starting at {@code offset}. */
  InputStream open(long offset) throws IOException;

  /** A file on the local file system. */
  static IdxSource of(Path path) {
    return new IdxSource() {
      @Override
      public String name() {
        return path.toString();
      }

      @Override
      public long length() throws IOException {
        return Files.size(path);
      }

      @Override
      public InputStream open(long offset) throws IOException {
        SeekableByteChannel ch = Files.newByteChannel(path);
        try {
          ch.position(offset);
        } catch (IOException e) {
          ch.close();
          throw e;
        }
        return Channels.newInputStream(ch);
      }
    };
  }
}
