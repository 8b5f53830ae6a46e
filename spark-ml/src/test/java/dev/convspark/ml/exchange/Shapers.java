package dev.convspark.ml.exchange;

import java.io.InputStream;
import java.io.OutputStream;
import java.util.function.UnaryOperator;

/** Test links: what a worker sends passes through a filter of the test's; what it receives, as it is. */
final class Shapers {

  private Shapers() {
  }

  static Wire.Shaper outbound(UnaryOperator<OutputStream> filter) {
    return new Wire.Shaper() {
      @Override
      public InputStream in(InputStream raw) {
        return raw;
      }

      @Override
      public OutputStream out(OutputStream raw) {
        return filter.apply(raw);
      }
    };
  }
}
