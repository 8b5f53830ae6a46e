package dev.convspark.tensor.backend;

import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventDestroy;
import static jcuda.driver.JCudaDriver.cuEventElapsedTime;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuEventSynchronize;

import java.util.ArrayList;
import java.util.List;
import jcuda.driver.CUevent;

/**
 * The GPU's own time for each kernel launched while it is attached to a {@link CudaBackend}: a
 * CUDA event recorded just before and just after every launch, on the stream the launches share,
 * read back by {@link #take}. Recording costs the host a little per launch and nothing in the
 * kernels' time, so it is for {@code GpuCheck}'s profile (where a step's GPU time goes), not for
 * training. The events are made once and reused; {@link #close} destroys them, before the
 * backend's context goes.
 */
final class KernelProfile implements AutoCloseable {

  /**
   * One launch: what it was ({@code sgemm 9800x64, k 800}, {@code adam, 12792 blocks}), its
   * floating-point operations where counted (a matrix product's 2 m n k; else 0) and its time.
   */
  record Launch(String kernel, double flops, double millis) {
  }

  private final List<CUevent> events = new ArrayList<>();
  private final List<String> kernels = new ArrayList<>();
  private final List<Double> flops = new ArrayList<>();

  /** Records the event before launch number {@link #kernels}{@code .size()}. */
  void before(String kernel, double flopCount) {
    record(2 * kernels.size());
    kernels.add(kernel);
    flops.add(flopCount);
  }

  /** Records the event after the launch {@link #before} announced. */
  void after() {
    record(2 * kernels.size() - 1);
  }

  private void record(int i) {
    while (events.size() <= i) {
      CUevent e = new CUevent();
      cuEventCreate(e, 0);
      events.add(e);
    }
    cuEventRecord(events.get(i), null);
  }

  /** Waits for the launches recorded since the last call and returns them in launch order. */
  List<Launch> take() {
    List<Launch> out = new ArrayList<>(kernels.size());
    if (!kernels.isEmpty()) {
      cuEventSynchronize(events.get(2 * kernels.size() - 1));
      float[] ms = new float[1];
      for (int i = 0; i < kernels.size(); i++) {
        cuEventElapsedTime(ms, events.get(2 * i), events.get(2 * i + 1));
        out.add(new Launch(kernels.get(i), flops.get(i), ms[0]));
      }
    }
    kernels.clear();
    flops.clear();
    return out;
  }

  @Override
  public void close() {
    for (CUevent e : events) {
      cuEventDestroy(e);
    }
    events.clear();
  }
}
