package dev.convspark.ml;

import com.esotericsoftware.kryo.Kryo;
import dev.convspark.ml.training.Training;
import org.apache.spark.serializer.KryoRegistrator;

/**
 * Registers with Kryo the classes convspark's training moves through Spark's serializer, for
 * applications that run Kryo with {@code spark.kryo.registrationRequired=true}:
 * {@code spark.kryo.registrator=dev.convspark.ml.CnnKryoRegistrator} (comma-separated after any
 * registrator of the application's own). Kryo without required registration, and Java
 * serialisation, need nothing.
 */
public final class CnnKryoRegistrator implements KryoRegistrator {

  @Override
  public void registerClasses(Kryo kryo) {
    for (Class<?> c : Training.serializedClasses()) {
      kryo.register(c);
    }
  }
}
