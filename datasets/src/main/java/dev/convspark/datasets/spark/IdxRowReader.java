package dev.convspark.datasets.spark;

import java.io.IOException;
import java.nio.ByteBuffer;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.connector.read.PartitionReader;
import org.apache.spark.unsafe.types.UTF8String;

/** Reads a partition row by row (the path Spark takes when it asks for rows). */
final class IdxRowReader implements PartitionReader<InternalRow> {

  private static final int CHUNK = 256;

  private final IdxLayout layout;
  private final IdxRecordStream records;
  private final UTF8String origin;
  private ByteBuffer buf;
  private int filled;
  private int pos;

  IdxRowReader(IdxInputPartition p, IdxLayout layout) throws IOException {
    this.layout = layout;
    this.records = new IdxRecordStream(p, layout.recordBytes, CHUNK);
    this.origin = UTF8String.fromString(p.file().data().name());
  }

  @Override
  public boolean next() throws IOException {
    if (++pos < filled) {
      return true;
    }
    filled = records.nextChunk();
    buf = ByteBuffer.wrap(records.data());
    pos = 0;
    return filled > 0;
  }

  @Override
  public InternalRow get() {
    Object value = layout.value(buf, pos * layout.recordBytes, origin);
    return layout.row(records.chunkStart() + pos, layout.hasLabels ? records.labels()[pos] : 0, value);
  }

  @Override
  public void close() throws IOException {
    records.close();
  }
}
