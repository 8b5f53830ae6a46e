package dev.convspark.datasets.spark;

import dev.convspark.datasets.spark.IdxOptions.ImageFormat;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.Float4Vector;
import org.apache.arrow.vector.Float8Vector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.SmallIntVector;
import org.apache.arrow.vector.TinyIntVector;
import org.apache.arrow.vector.VarBinaryVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.complex.ListVector;
import org.apache.arrow.vector.complex.StructVector;
import org.apache.arrow.vector.types.FloatingPointPrecision;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.spark.sql.connector.read.PartitionReader;
import org.apache.spark.sql.vectorized.ArrowColumnVector;
import org.apache.spark.sql.vectorized.ColumnVector;
import org.apache.spark.sql.vectorized.ColumnarBatch;

/**
 * Reads a partition as columnar batches of Apache Arrow vectors, wrapped for Spark in
 * {@link ArrowColumnVector}s. The reader owns one allocator; each batch's vectors are released
 * when the next batch is built, and the allocator when the reader closes, which fails loudly if
 * any buffer were still held.
 */
final class IdxColumnarReader implements PartitionReader<ColumnarBatch> {

  private final IdxLayout layout;
  private final IdxRecordStream records;
  private final BufferAllocator allocator;
  private final byte[] origin;
  private BigIntVector index;
  private IntVector label;
  private FieldVector value;
  private VarCharVector imageOrigin;
  private IntVector imageHeight;
  private IntVector imageWidth;
  private IntVector imageChannels;
  private IntVector imageMode;
  private VarBinaryVector imageData;
  private ColumnarBatch batch;

  IdxColumnarReader(IdxInputPartition p, IdxLayout layout, int batchSize) throws IOException {
    this.layout = layout;
    this.records = new IdxRecordStream(p, layout.recordBytes, batchSize);
    this.allocator = new RootAllocator(Long.MAX_VALUE);
    this.origin = p.file().data().name().getBytes(StandardCharsets.UTF_8);
  }

  @Override
  public boolean next() throws IOException {
    int n = records.nextChunk();
    if (n == 0) {
      return false;
    }
    // Fresh vectors for every batch: rows Spark derives from a batch may still point into it
    // while it asks for the next one, so a batch is only released when the next is built.
    releaseBatch();
    createVectors();
    long start = records.chunkStart();
    for (int i = 0; i < n; i++) {
      index.setSafe(i, start + i);
    }
    index.setValueCount(n);
    if (label != null) {
      int[] l = records.labels();
      for (int i = 0; i < n; i++) {
        label.setSafe(i, l[i]);
      }
      label.setValueCount(n);
    }
    ByteBuffer buf = ByteBuffer.wrap(records.data());
    if (layout.format == ImageFormat.IMAGE) {
      fillImages(buf, n);
    } else if (layout.shape.length == 0) {
      fillScalars(buf, n);
    } else {
      fillLists(buf, n);
    }
    batch.setNumRows(n);
    return true;
  }

  private void createVectors() {
    List<FieldVector> vectors = new ArrayList<>();
    try {
      index = new BigIntVector("index", allocator);
      vectors.add(index);
      if (layout.hasLabels) {
        label = new IntVector("label", allocator);
        vectors.add(label);
      }
      if (layout.format == ImageFormat.IMAGE) {
        StructVector image = StructVector.empty("image", allocator);
        value = image;
        FieldType int32 = FieldType.notNullable(new ArrowType.Int(32, true));
        imageOrigin = image.addOrGet("origin", FieldType.nullable(ArrowType.Utf8.INSTANCE), VarCharVector.class);
        imageHeight = image.addOrGet("height", int32, IntVector.class);
        imageWidth = image.addOrGet("width", int32, IntVector.class);
        imageChannels = image.addOrGet("nChannels", int32, IntVector.class);
        imageMode = image.addOrGet("mode", int32, IntVector.class);
        imageData = image.addOrGet("data", FieldType.notNullable(ArrowType.Binary.INSTANCE), VarBinaryVector.class);
      } else if (layout.shape.length == 0) {
        value = FieldType.notNullable(arrowType()).createNewSingleVector("value", allocator, null);
      } else {
        ListVector list = ListVector.empty(layout.format == ImageFormat.RAW ? "data" : "features", allocator);
        list.addOrGetVector(FieldType.notNullable(layout.format == ImageFormat.RAW ? arrowType()
            : new ArrowType.FloatingPoint(FloatingPointPrecision.SINGLE)));
        value = list;
      }
      vectors.add(value);
      index.allocateNew();
      if (label != null) {
        label.allocateNew();
      }
      value.allocateNew();
    } catch (RuntimeException e) {
      vectors.forEach(FieldVector::close);
      throw e;
    }
    ColumnVector[] columns = new ColumnVector[vectors.size()];
    for (int i = 0; i < columns.length; i++) {
      columns[i] = new ArrowColumnVector(vectors.get(i));
    }
    batch = new ColumnarBatch(columns);
  }

  private void releaseBatch() {
    if (batch != null) {
      batch.close();
      batch = null;
    }
  }

  private void fillImages(ByteBuffer buf, int n) {
    StructVector image = (StructVector) value;
    byte[] bytes = buf.array();
    for (int i = 0; i < n; i++) {
      imageOrigin.setSafe(i, origin);
      imageHeight.setSafe(i, layout.shape[0]);
      imageWidth.setSafe(i, layout.shape[1]);
      imageChannels.setSafe(i, layout.channels());
      imageMode.setSafe(i, layout.mode());
      imageData.setSafe(i, bytes, i * layout.recordBytes, layout.recordBytes);
      image.setIndexDefined(i);
    }
    image.setValueCount(n);
  }

  private void fillLists(ByteBuffer buf, int n) {
    ListVector list = (ListVector) value;
    FieldVector values = list.getDataVector();
    int e = layout.elements;
    boolean floats = values instanceof Float4Vector;
    if (floats) {
      // Bulk: fill the data buffer directly and mark every value valid at once.
      while (values.getValueCapacity() < n * e) {
        values.reAlloc();
      }
      ArrowBuf out = values.getDataBuffer();
      for (int i = 0; i < n; i++) {
        int off = i * layout.recordBytes;
        long at = (long) i * e * Float.BYTES;
        for (int j = 0; j < e; j++) {
          out.setFloat(at + (long) j * Float.BYTES, layout.floatAt(buf, off, j));
        }
      }
      values.getValidityBuffer().setOne(0, (n * (long) e + 7) / 8);
    }
    for (int i = 0; i < n; i++) {
      list.startNewValue(i);
      if (!floats) {
        int off = i * layout.recordBytes;
        int at = i * e;
        for (int j = 0; j < e; j++) {
          setElement(values, at + j, buf, off, j);
        }
      }
      list.endValue(i, e);
    }
    values.setValueCount(n * e);
    list.setValueCount(n);
  }

  private void fillScalars(ByteBuffer buf, int n) {
    for (int i = 0; i < n; i++) {
      setElement(value, i, buf, i * layout.recordBytes, 0);
    }
    value.setValueCount(n);
  }

  private ArrowType arrowType() {
    return switch (layout.type) {
      case UNSIGNED_BYTE, INT -> new ArrowType.Int(32, true);
      case BYTE -> new ArrowType.Int(8, true);
      case SHORT -> new ArrowType.Int(16, true);
      case FLOAT -> new ArrowType.FloatingPoint(FloatingPointPrecision.SINGLE);
      case DOUBLE -> new ArrowType.FloatingPoint(FloatingPointPrecision.DOUBLE);
    };
  }

  /** Sets vector slot {@code at} from element {@code j} of the record at {@code off}, in the file's type. */
  private void setElement(FieldVector v, int at, ByteBuffer buf, int off, int j) {
    switch (layout.type) {
      case UNSIGNED_BYTE -> ((IntVector) v).setSafe(at, buf.get(off + j) & 0xff);
      case INT -> ((IntVector) v).setSafe(at, buf.getInt(off + 4 * j));
      case BYTE -> ((TinyIntVector) v).setSafe(at, buf.get(off + j));
      case SHORT -> ((SmallIntVector) v).setSafe(at, buf.getShort(off + 2 * j));
      case FLOAT -> ((Float4Vector) v).setSafe(at, buf.getFloat(off + 4 * j));
      case DOUBLE -> ((Float8Vector) v).setSafe(at, buf.getDouble(off + 8 * j));
    }
  }

  @Override
  public ColumnarBatch get() {
    return batch;
  }

  @Override
  public void close() throws IOException {
    try {
      releaseBatch();
      records.close();
    } finally {
      allocator.close();
    }
  }
}
