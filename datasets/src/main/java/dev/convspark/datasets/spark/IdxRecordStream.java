package dev.convspark.datasets.spark;

import dev.convspark.datasets.idx.IdxFormatException;
import dev.convspark.datasets.idx.IdxReader;
import dev.convspark.datasets.idx.IdxType;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * The records of one partition, in chunks: data bytes and labels side by side. Shared by the row
 * and the columnar readers.
 */
final class IdxRecordStream implements AutoCloseable {

  private final IdxReader data;
  private final IdxReader labels;
  private final IdxType labelType;
  private final byte[] dataBuf;
  private final byte[] labelBuf;
  private final int[] labelValues;
  private long next;
  private int count;

  IdxRecordStream(IdxInputPartition p, int recordBytes, int chunk) throws IOException {
    data = IdxReader.open(p.file().data(), p.first(), p.count());
    IdxReader l = null;
    try {
      l = p.file().labels() == null ? null : IdxReader.open(p.file().labels(), p.first(), p.count());
    } catch (IOException | RuntimeException e) {
      data.close();
      throw e;
    }
    labels = l;
    labelType = l == null ? null : l.header().type();
    dataBuf = new byte[Math.max(1, recordBytes) * chunk];
    labelBuf = l == null ? null : new byte[labelType.bytes() * chunk];
    labelValues = new int[chunk];
    next = p.first();
  }

  /** Reads the next chunk; returns the number of records in it, 0 at the end. */
  int nextChunk() throws IOException {
    long start = next;
    count = data.readRecords(dataBuf, labelValues.length);
    if (labels != null) {
      int n = labels.readRecords(labelBuf, count);
      if (n != count) {
        throw new IdxFormatException(labels.source(), "ended at record " + (start + n) + " while " + data.source()
            + " has more records");
      }
      ByteBuffer lb = ByteBuffer.wrap(labelBuf);
      for (int i = 0; i < n; i++) {
        labelValues[i] = IdxLayout.label(lb, i, labelType);
      }
    }
    next += count;
    return count;
  }

  /** Index of the first record of the current chunk. */
  long chunkStart() {
    return next - count;
  }

  byte[] data() {
    return dataBuf;
  }

  int[] labels() {
    return labelValues;
  }

  @Override
  public void close() throws IOException {
    try {
      data.close();
    } finally {
      if (labels != null) {
        labels.close();
      }
    }
  }
}
