package dev.convspark.datasets.spark;

import dev.convspark.datasets.spark.IdxOptions.ImageFormat;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
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
 * when the next batch is built and the allocator when the reader closes, which fails loudly if
 * any buffer were still held.
 */
final class IdxColumnarReader implements PartitionReader<ColumnarBatch> {

  private final IdxLayout layout;
  private final IdxRecordStream records;
  private final BufferAllocator allocator;
  private final byte[] origin;
  private ColumnarBatch batch;

  IdxColumnarReader(IdxInputPartition p, IdxLayout layout, int batchSize) throws IOException {
    this.layout = layout;
    this.records = new IdxRecordStream(p, layout.recordBytes, batchSize);
    this.allocator = new RootAllocator(Long.MAX_VALUE);
    this.origin = p.file().data().name().getBytes(StandardCharsets.UTF_8);
  }

  @Override
  public boolean next() throws IOException {
    releaseBatch();
    int n = records.nextChunk();
    if (n == 0) {
      return false;
    }
    List<FieldVector> vectors = new ArrayList<>();
    try {
      BigIntVector index = new BigIntVector("index", allocator);
      vectors.add(index);
      index.allocateNew(n);
      long start = records.chunkStart();
      for (int i = 0; i < n; i++) {
        index.set(i, start + i);
      }
      index.setValueCount(n);
      if (layout.hasLabels) {
        IntVector label = new IntVector("label", allocator);
        vectors.add(label);
        label.allocateNew(n);
        int[] l = records.labels();
        for (int i = 0; i < n; i++) {
          label.set(i, l[i]);
        }
        label.setValueCount(n);
      }
      ByteBuffer buf = ByteBuffer.wrap(records.data());
      vectors.add(layout.format == ImageFormat.IMAGE ? images(buf, n) : layout.shape.length == 0 ? scalars(buf, n) : lists(buf, n));
    } catch (RuntimeException e) {
      vectors.forEach(FieldVector::close);
      throw e;
    }
    ColumnVector[] columns = new ColumnVector[vectors.size()];
    for (int i = 0; i < columns.length; i++) {
      columns[i] = new ArrowColumnVector(vectors.get(i));
    }
    batch = new ColumnarBatch(columns, n);
    return true;
  }

  private FieldVector images(ByteBuffer buf, int n) {
    StructVector image = StructVector.empty("image", allocator);
    VarCharVector originV = image.addOrGet("origin", FieldType.nullable(ArrowType.Utf8.INSTANCE), VarCharVector.class);
    IntVector height = image.addOrGet("height", FieldType.notNullable(new ArrowType.Int(32, true)), IntVector.class);
    IntVector width = image.addOrGet("width", FieldType.notNullable(new ArrowType.Int(32, true)), IntVector.class);
    IntVector channels = image.addOrGet("nChannels", FieldType.notNullable(new ArrowType.Int(32, true)), IntVector.class);
    IntVector mode = image.addOrGet("mode", FieldType.notNullable(new ArrowType.Int(32, true)), IntVector.class);
    VarBinaryVector data = image.addOrGet("data", FieldType.notNullable(ArrowType.Binary.INSTANCE), VarBinaryVector.class);
    image.allocateNew();
    byte[] bytes = buf.array();
    for (int i = 0; i < n; i++) {
      originV.setSafe(i, origin);
      height.setSafe(i, layout.shape[0]);
      width.setSafe(i, layout.shape[1]);
      channels.setSafe(i, layout.channels());
      mode.setSafe(i, layout.mode());
      data.setSafe(i, bytes, i * layout.recordBytes, layout.recordBytes);
      image.setIndexDefined(i);
    }
    image.setValueCount(n);
    return image;
  }

  private FieldVector lists(ByteBuffer buf, int n) {
    String name = layout.format == ImageFormat.RAW ? "data" : "features";
    ListVector list = ListVector.empty(name, allocator);
    ArrowType elementType = layout.format == ImageFormat.RAW ? arrowType() : new ArrowType.FloatingPoint(FloatingPointPrecision.SINGLE);
    list.addOrGetVector(FieldType.notNullable(elementType));
    list.allocateNew();
    FieldVector values = list.getDataVector();
    int e = layout.elements;
    for (int i = 0; i < n; i++) {
      list.startNewValue(i);
      int off = i * layout.recordBytes;
      int at = i * e;
      for (int j = 0; j < e; j++) {
        setElement(values, at + j, buf, off, j, layout.format != ImageFormat.RAW);
      }
      list.endValue(i, e);
    }
    values.setValueCount(n * e);
    list.setValueCount(n);
    return list;
  }

  private FieldVector scalars(ByteBuffer buf, int n) {
    FieldVector v = FieldType.notNullable(arrowType()).createNewSingleVector("value", allocator, null);
    v.setInitialCapacity(n);
    v.allocateNew();
    for (int i = 0; i < n; i++) {
      setElement(v, i, buf, i * layout.recordBytes, 0, false);
    }
    v.setValueCount(n);
    return v;
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

  /** Sets vector slot {@code at} from element {@code j} of the record at {@code off}. */
  private void setElement(FieldVector v, int at, ByteBuffer buf, int off, int j, boolean asFloat) {
    if (asFloat) {
      ((Float4Vector) v).setSafe(at, layout.floatAt(buf, off, j));
      return;
    }
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

  private void releaseBatch() {
    if (batch != null) {
      batch.close();
      batch = null;
    }
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
