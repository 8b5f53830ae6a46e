package dev.convspark.datasets.spark;

import dev.convspark.datasets.idx.IdxSource;
import java.io.IOException;
import java.io.InputStream;
import java.io.Serializable;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.util.SerializableConfiguration;

/** An IDX file on any Hadoop file system (local, HDFS, S3A, ...), usable on executors. */
final class HadoopIdxSource implements IdxSource, Serializable {
  private static final long serialVersionUID = 1L;

  private final String path;
  private final SerializableConfiguration conf;

  HadoopIdxSource(String path, SerializableConfiguration conf) {
    this.path = path;
    this.conf = conf;
  }

  @Override
  public String name() {
    return path;
  }

  @Override
  public long length() throws IOException {
    Path p = new Path(path);
    return p.getFileSystem(conf.value()).getFileStatus(p).getLen();
  }

  @Override
  public InputStream open(long offset) throws IOException {
    Path p = new Path(path);
    FileSystem fs = p.getFileSystem(conf.value());
    FSDataInputStream in = fs.open(p, 1 << 16);
    try {
      if (offset > 0) {
        in.seek(offset);
      }
    } catch (IOException e) {
      in.close();
      throw e;
    }
    return in;
  }
}
