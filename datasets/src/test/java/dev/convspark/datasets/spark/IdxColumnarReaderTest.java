package dev.convspark.datasets.spark;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.datasets.idx.IdxHeader;
import dev.convspark.datasets.idx.IdxReader;
import dev.convspark.datasets.idx.IdxType;
import dev.convspark.datasets.idx.IdxWriter;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.sql.vectorized.ColumnarBatch;
import org.apache.spark.util.SerializableConfiguration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The Arrow reader on its own: batch sizes, values, and every buffer released on close. */
class IdxColumnarReaderTest {

  @TempDir
  Path dir;

  private IdxInputPartition partition(int records, long first, long count) throws IOException {
    IdxHeader h = new IdxHeader(IdxType.UNSIGNED_BYTE, new int[] {records, 4, 5});
    byte[] data = new byte[(int) h.dataBytes()];
    for (int i = 0; i < data.length; i++) {
      data[i] = (byte) i;
    }
    Path p = dir.resolve("r-images-idx3-ubyte");
    IdxWriter.write(p, h, data, false);
    HadoopIdxSource src = new HadoopIdxSource(p.toString(), new SerializableConfiguration(new Configuration()));
    return new IdxInputPartition(new IdxFile(src, IdxReader.validate(src), false, null), first, count);
  }

  @Test
  void readsBatchesAndReleasesEveryBufferOnClose() throws IOException {
    IdxInputPartition p = partition(1000, 100, 650);
    for (String format : new String[] {"image", "array", "raw"}) {
      IdxLayout layout = IdxLayout.of(p.file().header(), IdxOptions.parse(Map.of("path", "x", "imageFormat", format)), false, "x");
      int rows = 0;
      int batches = 0;
      // close() closes the allocator, which throws if any Arrow buffer is still held.
      try (IdxColumnarReader r = new IdxColumnarReader(p, layout, 256)) {
        while (r.next()) {
          ColumnarBatch b = r.get();
          assertTrue(b.numRows() <= 256);
          assertEquals(100 + rows, b.column(0).getLong(0), "index of the batch's first row");
          rows += b.numRows();
          batches++;
        }
      }
      assertEquals(650, rows, format);
      assertEquals(3, batches, format);
    }
  }

  @Test
  void closingAfterTheFirstBatchReleasesEverything() throws IOException {
    IdxInputPartition p = partition(300, 0, 300);
    IdxLayout layout = IdxLayout.of(p.file().header(), IdxOptions.parse(Map.of("path", "x")), false, "x");
    try (IdxColumnarReader r = new IdxColumnarReader(p, layout, 128)) {
      assertTrue(r.next());
      ColumnarBatch b = r.get();
      assertEquals(20, b.column(1).getStruct(5).getBinary(5).length, "image bytes of record 5");
      assertEquals((byte) 100, b.column(1).getStruct(5).getBinary(5)[0]);
    }
  }
}
