package dev.convspark.ml.exchange;

import java.io.IOException;

/**
 * A ring worker's part in the tail of a sharded flow of a {@link RingAllreduce} (see
 * {@link RingFlow#tail}): on the step's thread, once the rest of the array is done, every worker's
 * copy of the tail goes round the ring with its statistics, hop by hop as
 * {@link RingAllreduce#gather} passes strings; then every worker adds the copies in rank order,
 * divides by the total count and applies the optimizer to them. On the step's thread rather than
 * the helpers: at the step's end every hand-over between threads is time that nothing hides. The
 * buffers are kept between steps.
 */
final class Tail {

  private final int rank;
  private final int size;
  private final RingLinks links;
  /** Every other worker's tail, in rank order without this worker's. */
  private float[] others = new float[0];
  private float[] sum = new float[0];

  Tail(int rank, int size, RingLinks links) {
    this.rank = rank;
    this.size = size;
    this.links = links;
  }

  /**
   * Shares {@code r}'s tail and this worker's statistics {@code all[rank]}: {@code all} then holds
   * every worker's, and the tail its mean, the optimizer applied.
   */
  void share(RingFlow r, double[][] all) throws IOException {
    SocketExchange.Flow f = r.flow;
    float[] data = f.data;
    int t = r.tail;
    if (others.length < (size - 1) * t) {
      others = new float[(size - 1) * t];
      sum = new float[t];
    }
    for (int k = 1; k < size; k++) {
      int sent = (rank - k + 1 + size) % size;
      int got = (rank - k + size) % size;
      links.writeStats(all[sent]);
      all[got] = new double[all[rank].length];
      links.exchange(r.sendLane, r.receiveLane, Math.toIntExact(r.tailAt(k)), sent == rank ? data : others,
          slot(sent, t), others, slot(got, t), t, () -> links.readStats(all[got]));
    }
    System.arraycopy(rank == 0 ? data : others, slot(0, t), sum, 0, t);
    for (int u = 1; u < size; u++) {
      float[] g = u == rank ? data : others;
      int at = slot(u, t);
      for (int j = 0; j < t; j++) {
        sum[j] += g[at + j];
      }
    }
    float inv = (float) (1 / f.total);
    for (int j = 0; j < t; j++) {
      data[j] = sum[j] * inv;
    }
    f.optimizer.update(f.params, data, 0, t);
  }

  /** Where worker {@code u}'s tail of {@code t} floats is: in {@link #others}, or at 0 of the array for this one. */
  private int slot(int u, int t) {
    return u == rank ? 0 : (u < rank ? u : u - 1) * t;
  }
}
