package dev.convspark.datasets.spark;

import java.io.IOException;
import java.io.UncheckedIOException;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.connector.read.InputPartition;
import org.apache.spark.sql.connector.read.PartitionReader;
import org.apache.spark.sql.connector.read.PartitionReaderFactory;
import org.apache.spark.sql.vectorized.ColumnarBatch;

/** Creates the readers of the partitions on the executors: columnar (Arrow) or row by row. */
final class IdxReaderFactory implements PartitionReaderFactory {
  private static final long serialVersionUID = 1L;

  private final IdxLayout layout;
  private final boolean columnar;
  private final int batchSize;

  IdxReaderFactory(IdxLayout layout, boolean columnar, int batchSize) {
    this.layout = layout;
    this.columnar = columnar && layout.columnar();
    this.batchSize = batchSize;
  }

  @Override
  public PartitionReader<InternalRow> createReader(InputPartition partition) {
    try {
      return new IdxRowReader((IdxInputPartition) partition, layout);
    } catch (IOException e) {
      throw new UncheckedIOException(e.getMessage(), e);
    }
  }

  @Override
  public PartitionReader<ColumnarBatch> createColumnarReader(InputPartition partition) {
    try {
      return new IdxColumnarReader((IdxInputPartition) partition, layout, batchSize);
    } catch (IOException e) {
      throw new UncheckedIOException(e.getMessage(), e);
    }
  }

  @Override
  public boolean supportColumnarReads(InputPartition partition) {
    return columnar;
  }
}
