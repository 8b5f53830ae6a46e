// An emulated CUDA driver for machines without a GPU: a libcuda.so.1 with the part of the driver
// API that CudaBackend calls through JCuda, running convspark's kernels (src/main/cuda/convspark.cu,
// compiled here as ordinary C++) on the CPU. A block's threads take turns on the calling OS thread,
// each on its own small stack, switching at __syncthreads.
//
// What it checks: the backend's host code (launch geometry, argument lists, buffer sizes, copies,
// the current context on each calling thread) and the kernels' arithmetic, against the CPU
// backend through the same GpuCheck parity checks a GPU machine runs. The driver refuses what a
// real one refuses (no current context, a copy past the end of an allocation, an oversized block
// (past the device's limits or the kernel's __launch_bounds__) or grid, PTX newer than the driver
// reads) with the real error codes and a line on stderr naming
// what was wrong, and device memory ends at a guard page so a kernel reading past a buffer stops
// the process. Events record when the device's queue reaches them, so two around a launch time the
// kernel on the CPU. Mistakes a GPU would punish are made to show here too: each block starts with its shared
// memory filled with NaN, as does fresh device (and pinned) memory, so an entry read before
// anything wrote it spoils the result; a block's threads take their turns in a shuffled order at
// every barrier (and a launch's blocks run in a shuffled order), so two threads that touch one
// shared entry between two barriers (one writing) give results that depend on the order; a block's
// threads must all wait at the same __syncthreads (by its line); and the threads of a warp must
// make the same WMMA calls between two barriers, as a GPU makes them for the whole warp at once.
// What it cannot check: the PTX's own code, a GPU's timing, races inside a warp's lockstep (no
// kernel relies on one), a race whose two orders give the same value, two blocks updating one
// global entry at once (blocks run one at a time), memory coalescing. It is a test tool: a GPU
// machine (gpu-check.sh) is the check of the GPU itself.
//
// Settings (environment): CONVSPARK_CUDA_EMU_DEVICES (number of devices, default 1; 0 makes cuInit
// fail as on a machine whose driver sees no GPU), CONVSPARK_CUDA_EMU_DRIVER (the driver version
// reported, as cuDriverGetVersion gives it, default 12000 = CUDA 12.0; it decides the newest PTX
// ISA accepted), CONVSPARK_CUDA_EMU_MEMORY (each device's memory in MiB, default 143771, an H200's;
// an allocation past it fails as on a full GPU), CONVSPARK_CUDA_EMU_SMS (the multiprocessor count
// reported, default 132, an H100's and H200's), CONVSPARK_CUDA_EMU_CC (the compute capability reported, major * 10 + minor,
// default 90, an H100's and H200's; the WMMA kernels run on any, mma.h), CONVSPARK_CUDA_EMU_GRAPHS
// (0: cuStreamBeginCapture fails, as a driver that refuses a capture would), CONVSPARK_CUDA_EMU_ORDER
// (the order of a block's threads' turns and of a launch's blocks: shuffle, the default, forward or
// reverse), CONVSPARK_CUDA_EMU_TRACE (a file to which every launch, copy, memset and
// synchronisation is appended as one line, so a test can see what a training step asks of the
// device: "launch NAME GXxGYxGZ BX ARGS...", with each device pointer as "p" and other arguments
// as numbers; "htod BYTES", "dtoh BYTES", "dtod BYTES", "memset BYTES", "sync", "alloc BYTES",
// "free BYTES", "alloc host BYTES" and "free host BYTES" for pinned memory, "event" (one
// recorded)), CONVSPARK_CUDA_EMU_KERNELS (0: launches and memsets are checked and traced but not
// run, so that a benchmark times the host's side of a step: JCuda, the backend's Java, the copies
// between host and device), CONVSPARK_CUDA_EMU_FAULT (a kernel's name: its first launch, alone or
// in a graph, is taken as a GPU takes a kernel that reads an illegal address. The launch returns
// success, as a real launch returns before the kernel runs, and from then on every call of the
// process but cuCtxDestroy fails with CUDA_ERROR_ILLEGAL_ADDRESS: a GPU's error of that kind is
// sticky, and CUDA's documentation has the process end before it can use the GPU again),
// CONVSPARK_CUDA_EMU_HANG (a kernel's name: its first launch never ends, so the call that runs it
// (the wait after it, or its launch where the queue is eager) never returns, as a kernel that never
// ends leaves a GPU's process waiting), CONVSPARK_CUDA_EMU_QUEUE (late, the default, or eager: see
// Streams below).
//
// Streams and CUDA graphs: work queued on any stream goes into the device's one queue, in order,
// and runs as late as the host lets it: at the next call that waits for the device (see Queue
// below; CONVSPARK_CUDA_EMU_QUEUE=eager runs it when queued), so a host that touches pinned memory
// before waiting for the copy to or from it gets what a GPU would give it. A stream capturing (cuStreamBeginCapture, global mode) records its
// launches (their arguments copied, as a real capture fixes them), copies from pinned memory and
// memsets as a graph's nodes instead of running them; cuGraphLaunch queues the nodes in order, each
// traced as when queued alone, after a line "graph N" (N nodes), and a copy node reads its host
// source when the graph runs. While a capture is open, what a real driver refuses is refused and
// the capture invalidated (its cuStreamEndCapture then fails): work on the legacy stream
// (CUDA_ERROR_STREAM_CAPTURE_IMPLICIT), and synchronous copies, waits and allocations
// (CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED), each with a line on stderr naming the call; from any
// thread in the global mode, from the capturing thread alone in the thread-local mode.
//
// Built by tensor-native/cuda-emu.sh, which generates kernels.inc (one X(name) per kernel).

#include "cuda_host.h"
#include "convspark.cu"

#include <dlfcn.h>
#include <elf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <chrono>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#if !defined(__x86_64__)
#error "the emulated CUDA driver's thread switch is written for x86-64"
#endif

#define API extern "C" __attribute__((visibility("default")))

typedef int CUresult;
typedef unsigned long long CUdeviceptr;
typedef int CUdevice;

// The result codes the emulated driver returns, with the driver's numbers: one list for the enum
// and for cuGetErrorName.
#define CU_RESULTS(X)                                                                                  \
  X(CUDA_SUCCESS, 0)                                                                                   \
  X(CUDA_ERROR_INVALID_VALUE, 1)                                                                       \
  X(CUDA_ERROR_OUT_OF_MEMORY, 2)                                                                       \
  X(CUDA_ERROR_NOT_INITIALIZED, 3)                                                                     \
  X(CUDA_ERROR_NO_DEVICE, 100)                                                                         \
  X(CUDA_ERROR_INVALID_DEVICE, 101)                                                                    \
  X(CUDA_ERROR_INVALID_IMAGE, 200)                                                                     \
  X(CUDA_ERROR_INVALID_CONTEXT, 201)                                                                   \
  X(CUDA_ERROR_UNSUPPORTED_PTX_VERSION, 222)                                                           \
  X(CUDA_ERROR_INVALID_HANDLE, 400)                                                                    \
  X(CUDA_ERROR_ILLEGAL_STATE, 401)                                                                     \
  X(CUDA_ERROR_NOT_FOUND, 500)                                                                         \
  X(CUDA_ERROR_NOT_READY, 600)                                                                         \
  X(CUDA_ERROR_ILLEGAL_ADDRESS, 700)                                                                   \
  X(CUDA_ERROR_LAUNCH_FAILED, 719)                                                                     \
  X(CUDA_ERROR_NOT_SUPPORTED, 801)                                                                     \
  X(CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, 900)                                                        \
  X(CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, 901)                                                        \
  X(CUDA_ERROR_STREAM_CAPTURE_IMPLICIT, 906)

enum {
#define CU_RESULT_ENUM(name, value) name = value,
  CU_RESULTS(CU_RESULT_ENUM)
#undef CU_RESULT_ENUM
};

namespace {

struct Context {
  int device;
  bool alive;
};

struct KernelInfo {
  const char* name;
  std::vector<int> sizes;      // bytes of each parameter
  std::vector<bool> pointers;  // which parameters are device pointers
  std::vector<bool> floats;    // which are float or double
  void (*run)(void** params);  // runs the current emulated thread
};

// An event is recorded when the queue reaches it (see Queue below), so the time between two events
// around a launch is the kernel's time on the CPU.
struct Event {
  Context* context;
  bool recorded;  // cuEventRecord was called
  bool reached;   // the queue has run up to it since
  double ms;      // steady_clock, when reached
};
std::set<Event*> events;

struct Module {
  Context* context;
  std::map<std::string, std::vector<int>> entries;  // the PTX's entries and their parameter sizes
  std::map<std::string, unsigned> max_threads;      // an entry's .maxntid (__launch_bounds__), where it has one
};

struct Function {
  const KernelInfo* kernel;
  unsigned max_threads;  // the most threads a block of it may have in the PTX (.maxntid), or 0
};

// One operation queued on the device or captured in a graph: a launch (its arguments' bytes, each
// at offsets[i]), a copy to the device (from pinned host memory, read when the copy runs, or from
// a copy of pageable memory made when it was queued: staged), a copy from the device into pinned
// host memory, a memset of 32-bit words, or an event to record.
struct Node {
  enum Kind { LAUNCH, HTOD, DTOH, MEMSET, EVENT } kind;
  const KernelInfo* kernel;
  unsigned grid[3], block[3];
  std::vector<char> bytes;
  std::vector<size_t> offsets;
  uintptr_t dst;  // the device's address (HTOD, MEMSET), the host's (DTOH)
  const void* src;  // the host's (HTOD), the device's (DTOH)
  std::shared_ptr<std::vector<char>> staged;  // HTOD from pageable memory: its bytes when queued
  size_t size;  // bytes (HTOD, DTOH), words (MEMSET)
  unsigned value;
  Event* event;
};

struct Graph {
  Context* context;
  std::vector<Node> nodes;
};

struct GraphExec {
  Context* context;
  std::vector<Node> nodes;
};

struct Stream {
  Context* context;
  Graph* capture;    // the graph being captured, or nullptr
  bool invalidated;  // something refused during the capture
  bool global;       // captured in the global mode (else thread-local)
  std::thread::id thread;  // the thread that began the capture
};
std::set<Stream*> streams;
std::set<Graph*> graphs;
std::set<GraphExec*> graph_execs;

template <typename Fn, Fn F>
struct Info;

template <typename... A, void (*F)(A...)>
struct Info<void (*)(A...), F> {
  template <size_t... I>
  static void call(void** p, std::index_sequence<I...>) {
    F(*static_cast<std::remove_cv_t<A>*>(p[I])...);
  }
  static void run(void** p) { call(p, std::index_sequence_for<A...>{}); }
  static KernelInfo get(const char* name) {
    return KernelInfo{name, {int(sizeof(A))...}, {std::is_pointer_v<A>...}, {std::is_floating_point_v<A>...}, &run};
  }
};

#define X(name) Info<decltype(&name), &name>::get(#name),
const std::vector<KernelInfo> kernels = {
#include "kernels.inc"
};
#undef X

std::recursive_mutex lock;
bool initialized = false;
thread_local Context* current_context = nullptr;
std::set<Context*> contexts;

// Pinned host memory (cuMemAllocHost): its size by address.
std::map<uintptr_t, size_t> pinned;

// Whether [p, p + bytes) lies in one block of pinned memory.
bool is_pinned(const void* p, size_t bytes) {
  uintptr_t from = reinterpret_cast<uintptr_t>(p);
  auto it = pinned.upper_bound(from);
  return it != pinned.begin() && (--it, from + bytes <= it->first + it->second);
}

// The device's queue: work queued (on any stream; they all run in the order queued, one order a GPU
// may take) and not run yet. A GPU runs queued work while the host goes on, and the host sees its
// results only after it waits; how late is the GPU's to choose. Here (CONVSPARK_CUDA_EMU_QUEUE=late,
// the default) queued work runs as late as a wait allows: at a call that waits for the device
// (cuCtxSynchronize, cuStreamSynchronize, a synchronous copy or memset, cuMemFree, cuMemFreeHost) or,
// for cuEventSynchronize, up to the event. So a host that rewrites pinned memory before the copy
// from it has been waited for sends the new bytes; one that reads pinned memory a queued copy will
// write before waiting for it reads what was there (NaN, if nothing was); a kernel's error comes
// from the wait after it, as a GPU's does. CONVSPARK_CUDA_EMU_QUEUE=eager runs each launch, memset and
// event when called, and a copy from pinned memory at the next call that queues or waits.
std::vector<Node> queue;

bool late_queue() {
  static const bool late = [] {
    const char* v = getenv("CONVSPARK_CUDA_EMU_QUEUE");
    if (v == nullptr || *v == 0 || strcmp(v, "late") == 0) return true;
    if (strcmp(v, "eager") == 0) return false;
    fprintf(stderr, "cuda-emu: CONVSPARK_CUDA_EMU_QUEUE=%s: expected late or eager\n", v);
    abort();
  }();
  return late;
}

CUresult run_node(const Node& n);
CUresult run_queue(const Event* until = nullptr);

struct Allocation {
  size_t size;
  void* map;
  size_t map_length;
  Context* context;
};
std::map<uintptr_t, Allocation> allocations;  // by the address handed out

int env_int(const char* name, int fallback) {
  const char* v = getenv(name);
  return v == nullptr || *v == 0 ? fallback : atoi(v);
}

int device_count() { return env_int("CONVSPARK_CUDA_EMU_DEVICES", 1); }
// Each device's memory, in bytes: CONVSPARK_CUDA_EMU_MEMORY MiB (an H200's 143,771 by default);
// anything but a whole number of MiB over 0 stops the process, saying so.
size_t device_memory() {
  static const size_t bytes = [] {
    const char* v = getenv("CONVSPARK_CUDA_EMU_MEMORY");
    if (v == nullptr || *v == 0) return size_t(143771) << 20;
    char* end = nullptr;
    long long mib = strtoll(v, &end, 10);
    if (*end != 0 || mib <= 0) {
      fprintf(stderr, "cuda-emu: CONVSPARK_CUDA_EMU_MEMORY=%s: expected a whole number of MiB over 0\n", v);
      abort();
    }
    return size_t(mib) << 20;
  }();
  return bytes;
}
int driver_version() { return env_int("CONVSPARK_CUDA_EMU_DRIVER", 12000); }

// Whether device work (kernels, memsets) runs; CONVSPARK_CUDA_EMU_KERNELS=0 leaves it out.
bool device_work() {
  static const bool on = env_int("CONVSPARK_CUDA_EMU_KERNELS", 1) != 0;
  return on;
}

// The trace file (CONVSPARK_CUDA_EMU_TRACE), or nullptr; appended to, one flushed line per call.
FILE* trace_file() {
  static FILE* f = [] {
    const char* path = getenv("CONVSPARK_CUDA_EMU_TRACE");
    return path == nullptr || *path == 0 ? nullptr : fopen(path, "a");
  }();
  return f;
}

void trace(const std::string& line) {
  if (FILE* f = trace_file()) {
    fprintf(f, "%s\n", line.c_str());
    fflush(f);
  }
}

// The newest PTX ISA (major * 10 + minor) a driver of the given version loads.
int newest_ptx(int driver) {
  static const int table[][2] = {{11080, 78}, {12000, 80}, {12010, 81}, {12020, 82}, {12030, 83}, {12040, 84},
                                 {12050, 85}, {12060, 85}, {12080, 87}, {12090, 88}, {13000, 90}};
  int best = 0;
  for (auto& row : table) {
    if (row[0] <= driver) best = row[1];
  }
  return best;
}

CUresult fail(CUresult code, const std::string& why) {
  fprintf(stderr, "convspark CUDA emulator: %s\n", why.c_str());
  fflush(stderr);
  return code;
}

// The kernel that faulted (CONVSPARK_CUDA_EMU_FAULT), once its launch has been reached; nullptr before.
const char* faulted = nullptr;

// Whether launching kernel `name` is the fault CONVSPARK_CUDA_EMU_FAULT asks for: the first launch
// of that kernel, which marks the process's device state as lost. A launch of the kernel
// CONVSPARK_CUDA_EMU_HANG names does not return.
bool faults(const char* name) {
  static const char* hang = getenv("CONVSPARK_CUDA_EMU_HANG");
  if (hang != nullptr && strcmp(hang, name) == 0) {
    fprintf(stderr, "convspark CUDA emulator: %s never ends (CONVSPARK_CUDA_EMU_HANG)\n", name);
    fflush(stderr);
    for (;;) pause();
  }
  static const char* wanted = getenv("CONVSPARK_CUDA_EMU_FAULT");
  if (faulted != nullptr || wanted == nullptr || strcmp(wanted, name) != 0) return false;
  faulted = wanted;
  fprintf(stderr, "convspark CUDA emulator: %s faults here (CONVSPARK_CUDA_EMU_FAULT), as on an illegal address: "
          "every later call of this process fails with CUDA_ERROR_ILLEGAL_ADDRESS\n", name);
  fflush(stderr);
  return true;
}

// After a fault, every call fails as a GPU's sticky error makes it.
CUresult need_no_fault(const char* call) {
  if (faulted == nullptr) return CUDA_SUCCESS;
  return fail(CUDA_ERROR_ILLEGAL_ADDRESS, std::string(call) + " after " + faulted + " faulted");
}

CUresult need_context(const char* call) {
  if (CUresult r = need_no_fault(call)) return r;
  if (!initialized) return fail(CUDA_ERROR_NOT_INITIALIZED, std::string(call) + " before cuInit");
  if (current_context == nullptr) {
    return fail(CUDA_ERROR_INVALID_CONTEXT, std::string(call) + " on a thread with no current context");
  }
  return CUDA_SUCCESS;
}

// For a call that waits for the device: a current context, and the queue run (see Queue), whose
// first error this call returns.
CUresult reach_stream(const char* call) {
  if (CUresult r = need_context(call)) return r;
  return run_queue();
}

// Queues n (see Queue); run at once where the queue is eager, but for a copy from pinned memory.
CUresult enqueue(Node n) {
  bool held = n.kind == Node::HTOD && n.staged == nullptr;
  queue.push_back(std::move(n));
  return late_queue() || held ? CUDA_SUCCESS : run_queue();
}

// The allocation holding [address, address + bytes), or nullptr.
const Allocation* find(uintptr_t address, size_t bytes) {
  auto it = allocations.upper_bound(address);
  if (it == allocations.begin()) return nullptr;
  --it;
  if (address + bytes > it->first + it->second.size) return nullptr;
  return &it->second;
}

std::string hex(uintptr_t v) {
  std::ostringstream s;
  s << "0x" << std::hex << v;
  return s.str();
}

// The stream of the current context that is capturing, or nullptr.
Stream* capturing() {
  for (Stream* st : streams) {
    if (st->capture != nullptr && st->context == current_context) return st;
  }
  return nullptr;
}

// A capture that the calling thread's calls are held to: one begun on this thread, or one in
// the global mode begun on any thread; nullptr if none.
Stream* capture_binding_this_thread() {
  Stream* st = capturing();
  if (st == nullptr || (!st->global && st->thread != std::this_thread::get_id())) return nullptr;
  return st;
}

// What a capture refuses (in the global mode from any thread, in the thread-local mode from its
// own): a call that waits, allocates or copies synchronously
// (CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED), or queues work on the legacy stream
// (CUDA_ERROR_STREAM_CAPTURE_IMPLICIT); either invalidates the capture.
CUresult refuse_in_capture(const char* call, CUresult code) {
  Stream* st = capture_binding_this_thread();
  if (st == nullptr) return CUDA_SUCCESS;
  st->invalidated = true;
  return fail(code, std::string(call) + (code == CUDA_ERROR_STREAM_CAPTURE_IMPLICIT
                                             ? " on the legacy stream" : "") +
                        " while a stream is capturing: refused, and the capture invalidated");
}

// A stream argument: nullptr (the legacy stream) or a live stream of the current context.
CUresult need_stream(const char* call, Stream* st) {
  if (st != nullptr && (streams.count(st) == 0 || st->context != current_context)) {
    return fail(CUDA_ERROR_INVALID_HANDLE, std::string(call) + ": not a stream of the current context");
  }
  if (st == nullptr) return refuse_in_capture(call, CUDA_ERROR_STREAM_CAPTURE_IMPLICIT);
  return CUDA_SUCCESS;
}

CUresult need_range(const char* call, const char* what, uintptr_t address, size_t bytes) {
  if (find(address, bytes) == nullptr) {
    return fail(CUDA_ERROR_INVALID_VALUE, std::string(call) + ": " + what + " " + hex(address) + " + " +
                                              std::to_string(bytes) + " bytes is not inside one device allocation");
  }
  return CUDA_SUCCESS;
}

// ---- the emulated threads of a block ----

enum State { FRESH, AT_BARRIER, DONE };

}  // namespace

namespace emu {
struct Thread {
  void* sp;
  uint3 idx;
  State state;
  uint64_t warp_calls;  // the warp-wide calls (WMMA's) made since the last barrier, hashed in order
  int barrier;          // the line of convspark.cu whose __syncthreads it waits at, when it waits
};
Thread* current;
uint3 block_idx, block_dim, grid_dim;
}  // namespace emu

namespace {

constexpr size_t STACK = 64 * 1024;
constexpr int MAX_THREADS = 1024;
char* stacks = nullptr;
emu::Thread threads[MAX_THREADS];
void* scheduler_sp;
const KernelInfo* running;
void** running_params;

}  // namespace

// Saves the callee-saved registers on the current stack, stores its pointer in *save, switches to
// the stack at to and restores the registers saved there.
extern "C" void emu_switch(void** save, void* to);
asm(R"(
  .text
  .globl emu_switch
  .hidden emu_switch
  .type emu_switch, @function
emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size emu_switch, .-emu_switch
)");

namespace emu {
const uint3& thread_idx() { return current->idx; }

void syncthreads(int line) {
  current->state = AT_BARRIER;
  current->barrier = line;
  emu_switch(&current->sp, scheduler_sp);
}
}  // namespace emu

namespace {

void thread_main() {
  running->run(running_params);
  emu::current->state = DONE;
  emu_switch(&emu::current->sp, scheduler_sp);
  abort();  // a finished thread is never resumed
}

// ---- shared memory: a NaN where the block has not written ----

// The kernels' shared arrays are function-level statics (cuda_host.h), named in shared.inc, which
// cuda-emu.sh writes from convspark.cu's __shared__ declarations: S(as) S(bs) ... Found in this
// library's own symbol table, as the statics of functions outside the driver's anonymous namespace
// whose names are those, so that each block can start with them filled with NaN: on a GPU a block's
// shared memory holds whatever was there before it, here it would hold the previous block's values,
// which can make a kernel that reads an entry it never wrote look right.
struct Region {
  uint32_t* at;
  size_t words;
  std::string symbol;
};

// One quiet NaN with a payload that says where it came from.
constexpr uint32_t POISON = 0x7fc0deadu;

bool names_shared_static(const std::string& symbol) {
  static const char* const names[] = {
#define S(name) #name,
#include "shared.inc"
#undef S
  };
  // A function's static: _ZZ <function> E <length> <name> [_ <discriminator>]; not the driver's.
  if (symbol.rfind("_ZZ", 0) != 0 || symbol.rfind("_ZZN12_GLOBAL__N_1", 0) == 0) return false;
  for (const char* name : names) {
    std::string tail = "E" + std::to_string(strlen(name)) + name;
    size_t at = symbol.rfind(tail);
    if (at == std::string::npos) continue;
    std::string rest = symbol.substr(at + tail.size());
    if (rest.empty() || (rest[0] == '_' && rest.find_first_not_of("_0123456789") == std::string::npos)) return true;
  }
  return false;
}

// Every shared array of every kernel; the process stops, saying why, where they cannot be found.
const std::vector<Region>& shared_regions() {
  static const std::vector<Region> regions = [] {
    Dl_info self;
    if (dladdr(reinterpret_cast<void*>(&names_shared_static), &self) == 0 || self.dli_fname == nullptr) {
      fprintf(stderr, "cuda-emu: cannot find the driver's own file to read its symbols\n");
      abort();
    }
    std::ifstream in(self.dli_fname, std::ios::binary);
    std::vector<char> elf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<Region> found;
    const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(elf.data());
    if (elf.size() < sizeof(Elf64_Ehdr) || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0) {
      fprintf(stderr, "cuda-emu: %s is not an ELF file\n", self.dli_fname);
      abort();
    }
    const auto* sections = reinterpret_cast<const Elf64_Shdr*>(elf.data() + eh->e_shoff);
    // Where the file puts the driver's own `threads`: where they are, unless the file was rebuilt
    // since it was loaded.
    const void* anchor = nullptr;
    for (int i = 0; i < eh->e_shnum; i++) {
      if (sections[i].sh_type != SHT_SYMTAB) continue;
      const char* strings = elf.data() + sections[sections[i].sh_link].sh_offset;
      const auto* symbols = reinterpret_cast<const Elf64_Sym*>(elf.data() + sections[i].sh_offset);
      size_t count = sections[i].sh_size / sizeof(Elf64_Sym);
      for (size_t j = 0; j < count; j++) {
        const Elf64_Sym& sym = symbols[j];
        std::string name = strings + sym.st_name;
        if (name == "_ZN12_GLOBAL__N_17threadsE") anchor = static_cast<char*>(self.dli_fbase) + sym.st_value;
        if (ELF64_ST_TYPE(sym.st_info) != STT_OBJECT || sym.st_size == 0 || !names_shared_static(name)) continue;
        found.push_back({reinterpret_cast<uint32_t*>(static_cast<char*>(self.dli_fbase) + sym.st_value),
                         size_t(sym.st_size / 4), name});
      }
    }
    if (anchor != static_cast<const void*>(threads)) {
      fprintf(stderr, "cuda-emu: %s is not the file this process loaded (rebuilt since?)\n", self.dli_fname);
      abort();
    }
    if (found.empty()) {
      fprintf(stderr, "cuda-emu: no kernel's shared arrays in the symbol table of %s (stripped?)\n", self.dli_fname);
      abort();
    }
    return found;
  }();
  return regions;
}

// Which shared arrays a kernel uses: those that the first blocks it runs (up to LEARN of them,
// each started with every array poisoned) leave changed. Later blocks start with those alone
// poisoned.
constexpr int LEARN = 64;
struct SharedUse {
  int blocks_seen = 0;
  std::vector<const Region*> used;
};
std::map<const KernelInfo*, SharedUse> shared_use;

void poison(const Region& r) { std::fill(r.at, r.at + r.words, POISON); }

bool changed(const Region& r) {
  for (size_t i = 0; i < r.words; i++) {
    if (r.at[i] != POISON) return true;
  }
  return false;
}

// ---- the order in which a block's threads take their turns ----

// CONVSPARK_CUDA_EMU_ORDER: "shuffle" (the default; a fresh order at every barrier, drawn from the
// kernel's name, the block and the barrier's count, so the same launch runs the same way every
// time), "forward" or "reverse". A thread runs from one barrier to the next in one turn, so two
// threads of a block that touch the same shared entry between two barriers, one of them writing
// (a missing __syncthreads), see each other's values or not depending on the order: a kernel whose
// results change with the order has such a race.
enum Order { SHUFFLE, FORWARD, REVERSE };
Order thread_order() {
  static const Order order = [] {
    const char* v = getenv("CONVSPARK_CUDA_EMU_ORDER");
    std::string s = v == nullptr ? "" : v;
    if (s.empty() || s == "shuffle") return SHUFFLE;
    if (s == "forward") return FORWARD;
    if (s == "reverse") return REVERSE;
    fprintf(stderr, "cuda-emu: CONVSPARK_CUDA_EMU_ORDER=%s: expected shuffle, forward or reverse\n", s.c_str());
    abort();
  }();
  return order;
}

uint64_t mix(uint64_t x) {  // splitmix64's finalizer
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// 0 to n - 1 in the order above; shuffled, by a draw from `state`.
template <typename T>
void arrange(std::vector<T>& order, T n, uint64_t state) {
  order.resize(n);
  for (T i = 0; i < n; i++) order[i] = thread_order() == REVERSE ? n - 1 - i : i;
  if (thread_order() != SHUFFLE) return;
  for (T i = n - 1; i > 0; i--) {
    state = mix(state);
    std::swap(order[i], order[state % (i + 1)]);
  }
}

}  // namespace

namespace emu {
// A warp-wide call (mma.h) by the current thread: `what` hashes the call and its arguments.
void warp_collective(uint64_t what) { current->warp_calls = mix(current->warp_calls + what); }
}  // namespace emu

namespace {

// Runs one block of n threads: nullptr, or why it failed. A GPU runs a warp-wide call (WMMA's
// loads, products, stores) for the 32 threads of a warp together, and leaves it undefined when
// some of them do not make it or pass other arguments; here every thread computes the whole
// call on its own, so such a kernel would look right: the threads of each warp must have made
// the same calls, with the same arguments, between each two barriers.
const char* run_block(int n, uint64_t seed, uint64_t block) {
  for (int i = 0; i < n; i++) {
    emu::Thread& t = threads[i];
    t.idx = {unsigned(i) % emu::block_dim.x, unsigned(i) / emu::block_dim.x % emu::block_dim.y,
             unsigned(i) / (emu::block_dim.x * emu::block_dim.y)};
    t.state = FRESH;
    t.warp_calls = 0;
    // A frame that emu_switch "returns" into thread_main from: six zeroed registers, the entry,
    // and a fake return address so that thread_main starts with the stack aligned as after a call.
    uint64_t* top = reinterpret_cast<uint64_t*>(stacks + (i + 1) * STACK);
    uint64_t* sp = top - 8;
    for (int r = 0; r < 6; r++) sp[r] = 0;
    sp[6] = reinterpret_cast<uint64_t>(&thread_main);
    sp[7] = 0;
    t.sp = sp;
  }
  static std::vector<int> order;
  for (int round = 0;; round++) {
    arrange(order, n, mix(seed ^ mix(block * 0x10001 + round)));
    int waiting = 0;
    for (int i : order) {
      emu::current = &threads[i];
      emu_switch(&scheduler_sp, threads[i].sp);
      waiting += threads[i].state == AT_BARRIER;
    }
    for (int i = 0; i < n; i++) {
      if (threads[i].warp_calls != threads[i / 32 * 32].warp_calls) {
        return "the threads of a warp made different WMMA calls between two barriers (a GPU needs the whole warp "
               "in each, with the same arguments)";
      }
    }
    for (int i = 0; i < n; i++) threads[i].warp_calls = 0;
    if (waiting == 0) return nullptr;
    if (waiting != n) return "some threads finished while others waited at __syncthreads";
    for (int i = 1; i < n; i++) {
      if (threads[i].barrier != threads[0].barrier) {
        static std::string why;
        why = "its threads waited at different __syncthreads (lines " + std::to_string(threads[0].barrier) + " and " +
              std::to_string(threads[i].barrier) + " of convspark.cu; a GPU needs all of them at the same one)";
        return why.c_str();
      }
    }
  }
}

CUresult launch(const KernelInfo& k, void** params, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                unsigned bz) {
  if (stacks == nullptr) {
    void* m = mmap(nullptr, STACK * MAX_THREADS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (m == MAP_FAILED) return fail(CUDA_ERROR_LAUNCH_FAILED, "cannot map the emulated threads' stacks");
    stacks = static_cast<char*>(m);
  }
  running = &k;
  running_params = params;
  emu::block_dim = {bx, by, bz};
  emu::grid_dim = {gx, gy, gz};
  int n = int(bx * by * bz);
  uint64_t seed = std::hash<std::string>()(k.name);
  SharedUse& use = shared_use[&k];
  // The blocks too take their turns in that order (a GPU runs them in any order, or at once).
  static std::vector<uint64_t> blocks;
  arrange(blocks, uint64_t(gx) * gy * gz, mix(seed ^ mix((uint64_t(gx) << 32) ^ (uint64_t(gy) << 16) ^ gz)));
  for (uint64_t b : blocks) {
    unsigned x = unsigned(b % gx), y = unsigned(b / gx % gy), z = unsigned(b / gx / gy);
    emu::block_idx = {x, y, z};
    bool learning = use.blocks_seen < LEARN;
    if (learning) {
      for (const Region& r : shared_regions()) poison(r);
    } else {
      for (const Region* r : use.used) poison(*r);
    }
    const char* failed = run_block(n, seed, b);
    if (learning) {
      use.blocks_seen++;
      for (const Region& r : shared_regions()) {
        if (changed(r) && std::find(use.used.begin(), use.used.end(), &r) == use.used.end()) use.used.push_back(&r);
      }
    }
    if (failed != nullptr) {
      return fail(CUDA_ERROR_LAUNCH_FAILED, std::string(k.name) + ": block (" + std::to_string(x) + ", " +
                                                std::to_string(y) + ", " + std::to_string(z) + "): " + failed);
    }
  }
  return CUDA_SUCCESS;
}

// The entries of a PTX text and the byte sizes of their parameters; into max_threads, the product
// of each entry's .maxntid (the directive between its parameters and its body).
std::map<std::string, std::vector<int>> ptx_entries(const std::string& ptx,
                                                    std::map<std::string, unsigned>& max_threads) {
  std::map<std::string, std::vector<int>> entries;
  std::istringstream in(ptx);
  std::string line;
  std::vector<int>* params = nullptr;
  std::string entry;  // the entry whose directives may follow, until its body opens
  while (std::getline(in, line)) {
    size_t e = line.find(".entry ");
    if (e != std::string::npos) {
      size_t start = e + 7;
      size_t end = line.find('(', start);
      entry = line.substr(start, end - start);
      params = &entries[entry];
      continue;
    }
    size_t m = line.find(".maxntid ");
    if (m != std::string::npos && !entry.empty()) {
      unsigned x = 1, y = 1, z = 1;
      sscanf(line.c_str() + m + 9, "%u, %u, %u", &x, &y, &z);
      max_threads[entry] = x * y * z;
    }
    if (line.find('{') != std::string::npos) entry.clear();
    if (params == nullptr) continue;
    size_t p = line.find(".param .");
    if (p != std::string::npos) {
      std::string type = line.substr(p + 8, 3);
      params->push_back(type == "u64" || type == "b64" || type == "s64" || type == "f64" ? 8 : 4);
    } else if (line.find(')') != std::string::npos) {
      params = nullptr;
    }
  }
  return entries;
}

// The parameters of a launch given as one buffer (extra: CU_LAUNCH_PARAM_BUFFER_POINTER, the
// buffer, CU_LAUNCH_PARAM_BUFFER_SIZE, a size_t, CU_LAUNCH_PARAM_END), each parameter at the next
// multiple of its own size: pointers to each into params, or an error when the size differs.
CUresult unpack_extra(const KernelInfo& k, const std::string& call, void** extra, std::vector<void*>& params) {
  char* buffer = nullptr;
  size_t* size = nullptr;
  for (int i = 0; extra[i] != nullptr; i += 2) {
    uintptr_t key = reinterpret_cast<uintptr_t>(extra[i]);
    if (key == 1) {
      buffer = static_cast<char*>(extra[i + 1]);
    } else if (key == 2) {
      size = static_cast<size_t*>(extra[i + 1]);
    } else {
      return fail(CUDA_ERROR_INVALID_VALUE, call + ": extra holds an unknown key " + std::to_string(key));
    }
  }
  if (buffer == nullptr || size == nullptr) {
    return fail(CUDA_ERROR_INVALID_VALUE, call + ": extra needs both the buffer and its size");
  }
  size_t at = 0;
  for (int bytes : k.sizes) {
    at = (at + bytes - 1) / bytes * bytes;
    params.push_back(buffer + at);
    at += bytes;
  }
  if (*size != at) {
    return fail(CUDA_ERROR_INVALID_VALUE, call + ": a parameter buffer of " + std::to_string(*size) +
                                              " bytes, but the kernel's parameters take " + std::to_string(at));
  }
  return CUDA_SUCCESS;
}

// A kernel argument as the trace shows it: "p" for a device pointer, else its value.
std::string argument_text(const KernelInfo& k, size_t i, const void* p) {
  if (k.pointers[i]) return "p";
  if (k.floats[i]) return k.sizes[i] == 4 ? std::to_string(*static_cast<const float*>(p))
                                          : std::to_string(*static_cast<const double*>(p));
  return k.sizes[i] == 4 ? std::to_string(*static_cast<const int*>(p))
                         : std::to_string(*static_cast<const long long*>(p));
}

std::string sizes_text(const std::vector<int>& s) {
  std::string r = "(";
  for (size_t i = 0; i < s.size(); i++) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + ")";
}

CUresult load_module(Module** module, const void* image) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (CUresult r = need_context("cuModuleLoadData")) return r;
  if (module == nullptr || image == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuModuleLoadData: null argument");
  std::string ptx(static_cast<const char*>(image));
  size_t v = ptx.find("\n.version ");
  if (v == std::string::npos) return fail(CUDA_ERROR_INVALID_IMAGE, "cuModuleLoadData: not PTX text (no .version)");
  int major = 0, minor = 0;
  sscanf(ptx.c_str() + v + 10, "%d.%d", &major, &minor);
  int newest = newest_ptx(driver_version());
  if (major * 10 + minor > newest) {
    return fail(CUDA_ERROR_UNSUPPORTED_PTX_VERSION,
                "cuModuleLoadData: PTX ISA " + std::to_string(major) + "." + std::to_string(minor) +
                    " is newer than this driver (" + std::to_string(driver_version()) + ") reads (" +
                    std::to_string(newest / 10) + "." + std::to_string(newest % 10) + ")");
  }
  std::map<std::string, unsigned> max_threads;
  auto entries = ptx_entries(ptx, max_threads);
  for (auto& [name, sizes] : entries) {
    const KernelInfo* k = nullptr;
    for (auto& c : kernels) {
      if (name == c.name) k = &c;
    }
    if (k == nullptr) {
      return fail(CUDA_ERROR_INVALID_IMAGE, "the PTX has a kernel " + name + " that convspark.cu does not define");
    }
    if (k->sizes != sizes) {
      return fail(CUDA_ERROR_INVALID_IMAGE, "kernel " + name + " takes parameters of " + sizes_text(sizes) +
                                                " bytes in the PTX but " + sizes_text(k->sizes) +
                                                " in convspark.cu: the PTX is stale (run tensor-native/build-ptx.sh)");
    }
  }
  *module = new Module{current_context, entries, max_threads};
  return CUDA_SUCCESS;
}

}  // namespace

API CUresult cuInit(unsigned flags) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (flags != 0) return fail(CUDA_ERROR_INVALID_VALUE, "cuInit: flags must be 0");
  if (device_count() <= 0) return CUDA_ERROR_NO_DEVICE;
  initialized = true;
  return CUDA_SUCCESS;
}

API CUresult cuDriverGetVersion(int* version) {
  if (version == nullptr) return CUDA_ERROR_INVALID_VALUE;
  *version = driver_version();
  return CUDA_SUCCESS;
}

API CUresult cuDeviceGetCount(int* count) {
  if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (count == nullptr) return CUDA_ERROR_INVALID_VALUE;
  *count = device_count();
  return CUDA_SUCCESS;
}

API CUresult cuDeviceGet(CUdevice* device, int ordinal) {
  if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (device == nullptr) return CUDA_ERROR_INVALID_VALUE;
  if (ordinal < 0 || ordinal >= device_count()) return CUDA_ERROR_INVALID_DEVICE;
  *device = ordinal;
  return CUDA_SUCCESS;
}

API CUresult cuDeviceGetName(char* name, int length, CUdevice device) {
  if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (device < 0 || device >= device_count()) return CUDA_ERROR_INVALID_DEVICE;
  if (name == nullptr || length <= 0) return CUDA_ERROR_INVALID_VALUE;
  snprintf(name, size_t(length), "convspark CUDA emulator (CPU)");
  return CUDA_SUCCESS;
}

API CUresult cuDeviceGetAttribute(int* value, int attribute, CUdevice device) {
  const int MULTIPROCESSOR_COUNT = 16;
  if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (device < 0 || device >= device_count()) return CUDA_ERROR_INVALID_DEVICE;
  if (value == nullptr) return CUDA_ERROR_INVALID_VALUE;
  const int CAPABILITY_MAJOR = 75, CAPABILITY_MINOR = 76;
  int capability = env_int("CONVSPARK_CUDA_EMU_CC", 90);
  if (attribute == CAPABILITY_MAJOR || attribute == CAPABILITY_MINOR) {
    *value = attribute == CAPABILITY_MAJOR ? capability / 10 : capability % 10;
    return CUDA_SUCCESS;
  }
  if (attribute != MULTIPROCESSOR_COUNT) {
    return fail(CUDA_ERROR_NOT_SUPPORTED, "cuDeviceGetAttribute: attribute " + std::to_string(attribute) +
                                              " is not emulated (only the multiprocessor count, 16, and the"
                                              " compute capability, 75 and 76)");
  }
  *value = env_int("CONVSPARK_CUDA_EMU_SMS", 132);
  return CUDA_SUCCESS;
}

API CUresult cuCtxCreate_v2(Context** context, unsigned flags, CUdevice device) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (CUresult r = need_no_fault("cuCtxCreate")) return r;
  if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (context == nullptr) return CUDA_ERROR_INVALID_VALUE;
  if (device < 0 || device >= device_count()) return CUDA_ERROR_INVALID_DEVICE;
  (void) flags;
  Context* c = new Context{device, true};
  contexts.insert(c);
  current_context = c;
  *context = c;
  return CUDA_SUCCESS;
}

API CUresult cuCtxDestroy_v2(Context* context) {
  std::lock_guard<std::recursive_mutex> g(lock);
  run_queue();
  if (contexts.count(context) == 0 || !context->alive) {
    return fail(CUDA_ERROR_INVALID_CONTEXT, "cuCtxDestroy: not a live context");
  }
  context->alive = false;
  for (auto it = allocations.begin(); it != allocations.end();) {
    if (it->second.context == context) {
      munmap(it->second.map, it->second.map_length);
      it = allocations.erase(it);
    } else {
      ++it;
    }
  }
  if (current_context == context) current_context = nullptr;
  return CUDA_SUCCESS;
}

API CUresult cuCtxSetCurrent(Context* context) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (context != nullptr && (contexts.count(context) == 0 || !context->alive)) {
    return fail(CUDA_ERROR_INVALID_CONTEXT, "cuCtxSetCurrent: not a live context");
  }
  current_context = context;
  return CUDA_SUCCESS;
}

API CUresult cuCtxSynchronize() {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (CUresult r = reach_stream("cuCtxSynchronize")) return r;
  if (CUresult r = refuse_in_capture("cuCtxSynchronize", CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED)) return r;
  trace("sync");
  return CUDA_SUCCESS;
}

API CUresult cuModuleLoadData(Module** module, const void* image) { return load_module(module, image); }

API CUresult cuModuleLoadDataEx(Module** module, const void* image, unsigned, void*, void**) {
  return load_module(module, image);
}

API CUresult cuModuleGetFunction(Function** function, Module* module, const char* name) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (CUresult r = need_context("cuModuleGetFunction")) return r;
  if (function == nullptr || module == nullptr || name == nullptr) return CUDA_ERROR_INVALID_VALUE;
  if (module->entries.count(name) == 0) {
    return fail(CUDA_ERROR_NOT_FOUND, std::string("cuModuleGetFunction: the module has no kernel ") + name);
  }
  for (auto& k : kernels) {
    if (std::string(name) == k.name) {
      auto m = module->max_threads.find(name);
      *function = new Function{&k, m == module->max_threads.end() ? 0u : m->second};
      return CUDA_SUCCESS;
    }
  }
  return CUDA_ERROR_NOT_FOUND;
}

namespace {
// The bytes allocated on the current context's device.
size_t device_used() {
  size_t used = 0;
  for (auto& [at, a] : allocations) used += a.context->device == current_context->device ? a.size : 0;
  return used;
}
}  // namespace

API CUresult cuMemAlloc_v2(CUdeviceptr* pointer, size_t bytes) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (CUresult r = need_context("cuMemAlloc")) return r;
  if (CUresult r = refuse_in_capture("cuMemAlloc", CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED)) return r;
  if (pointer == nullptr || bytes == 0) return fail(CUDA_ERROR_INVALID_VALUE, "cuMemAlloc: 0 bytes");
  // The data ends where an inaccessible page begins, so a kernel reading past it faults. It starts
  // 16-byte aligned, as the kernels' float4 accesses need (a real driver's allocations are 256-byte
  // aligned), so a kernel reading past the end by under 16 bytes goes unnoticed.
  size_t used = device_used();
  if (bytes > device_memory() - used) {
    return fail(CUDA_ERROR_OUT_OF_MEMORY, "cuMemAlloc: " + std::to_string(bytes) + " bytes asked for, " +
                                              std::to_string(device_memory() - used) + " of " +
                                              std::to_string(device_memory()) + " free (CONVSPARK_CUDA_EMU_MEMORY)");
  }
  size_t page = size_t(sysconf(_SC_PAGESIZE));
  size_t data = (bytes + page - 1) / page * page;
  void* map = mmap(nullptr, data + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (map == MAP_FAILED) return fail(CUDA_ERROR_OUT_OF_MEMORY, "cuMemAlloc: out of memory");
  mprotect(static_cast<char*>(map) + data, page, PROT_NONE);
  uintptr_t address = reinterpret_cast<uintptr_t>(map) + data - (bytes + 15) / 16 * 16;
  // A real driver's fresh memory holds whatever was there; here NaN, so that a kernel or a copy
  // that reads what nothing wrote (a buffer taken to start at zero) spoils the result.
  std::fill(reinterpret_cast<uint32_t*>(address), reinterpret_cast<uint32_t*>(address) + bytes / 4, POISON);
  memset(reinterpret_cast<char*>(address) + bytes / 4 * 4, 0xff, bytes % 4);
  allocations[address] = Allocation{bytes, map, data + page, current_context};
  *pointer = address;
  trace("alloc " + std::to_string(bytes));
  return CUDA_SUCCESS;
}

API CUresult cuMemGetInfo_v2(size_t* free, size_t* total) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (CUresult r = need_context("cuMemGetInfo")) return r;
  if (free == nullptr || total == nullptr) return CUDA_ERROR_INVALID_VALUE;
  size_t used = device_used();
  *total = device_memory();
  *free = device_memory() - used;
  return CUDA_SUCCESS;
}

API CUresult cuMemFree_v2(CUdeviceptr pointer) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (CUresult r = reach_stream("cuMemFree")) return r;
  if (CUresult r = refuse_in_capture("cuMemFree", CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED)) return r;
  auto it = allocations.find(uintptr_t(pointer));
  if (it == allocations.end()) {
    return fail(CUDA_ERROR_INVALID_VALUE, "cuMemFree: " + hex(uintptr_t(pointer)) + " is not a live allocation");
  }
  trace("free " + std::to_string(it->second.size));
  munmap(it->second.map, it->second.map_length);
  allocations.erase(it);
  return CUDA_SUCCESS;
}

API CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void* src, size_t bytes) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (CUresult r = reach_stream("cuMemcpyHtoD")) return r;
  if (CUresult r = refuse_in_capture("cuMemcpyHtoD", CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED)) return r;
  if (CUresult r = need_range("cuMemcpyHtoD", "destination", uintptr_t(dst), bytes)) return r;
  memcpy(reinterpret_cast<void*>(dst), src, bytes);
  trace("htod " + std::to_string(bytes));
  return CUDA_SUCCESS;
}

API CUresult cuMemAllocHost_v2(void** pointer, size_t bytes) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (CUresult r = need_context("cuMemAllocHost")) return r;
  if (CUresult r = refuse_in_capture("cuMemAllocHost", CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED)) return r;
  if (pointer == nullptr || bytes == 0) return fail(CUDA_ERROR_INVALID_VALUE, "cuMemAllocHost: 0 bytes");
  void* p = aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
  if (p == nullptr) return fail(CUDA_ERROR_OUT_OF_MEMORY, "cuMemAllocHost: out of memory");
  // Whatever was there, as in device memory (cuMemAlloc): NaN here.
  std::fill(static_cast<uint32_t*>(p), static_cast<uint32_t*>(p) + bytes / 4, POISON);
  pinned[reinterpret_cast<uintptr_t>(p)] = bytes;
  *pointer = p;
  trace("alloc host " + std::to_string(bytes));
  return CUDA_SUCCESS;
}

API CUresult cuMemFreeHost(void* pointer) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (CUresult r = reach_stream("cuMemFreeHost")) return r;
  if (CUresult r = refuse_in_capture("cuMemFreeHost", CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED)) return r;
  auto it = pinned.find(reinterpret_cast<uintptr_t>(pointer));
  if (it == pinned.end()) return fail(CUDA_ERROR_INVALID_VALUE, "cuMemFreeHost: not pinned memory of cuMemAllocHost");
  trace("free host " + std::to_string(it->second));
  free(pointer);
  pinned.erase(it);
  return CUDA_SUCCESS;
}

namespace {
// An asynchronous copy between `host` and the device's `device` (to the device for HTOD, from it for
// DTOH) on `stream`. Where the stream is capturing, the copy becomes a node of the graph if its host
// memory is pinned, and is refused otherwise (the capture invalidated), as a driver does. Else, with
// pinned host memory, it is queued: the copy is made when the queue reaches it (see Queue), so a
// host that rewrites the source or reads the destination before waiting for it gets what a GPU
// would give. With pageable host memory, a copy to the device takes its bytes now (a driver stages
// them before returning) and one from it waits for the device and is made now.
CUresult async_copy(Node::Kind kind, void* host, CUdeviceptr device, size_t bytes, void* stream) {
  bool to_device = kind == Node::HTOD;
  const char* call = to_device ? "cuMemcpyHtoDAsync" : "cuMemcpyDtoHAsync";
  if (CUresult r = need_context(call)) return r;
  Stream* st = static_cast<Stream*>(stream);
  if (CUresult r = need_stream(call, st)) return r;
  if (CUresult r = need_range(call, to_device ? "destination" : "source", uintptr_t(device), bytes)) return r;
  bool in_pinned = is_pinned(host, bytes);
  Node n{};
  n.kind = kind;
  n.dst = to_device ? uintptr_t(device) : reinterpret_cast<uintptr_t>(host);
  n.src = to_device ? host : reinterpret_cast<const void*>(device);
  n.size = bytes;
  if (st != nullptr && st->capture != nullptr) {
    if (!in_pinned) {
      st->invalidated = true;
      const char* side = to_device ? "from" : "into";
      return fail(CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, std::string(call) + ": a copy " + side +
                                                             " pageable memory cannot be captured (only " + side +
                                                             " pinned memory)");
    }
    st->capture->nodes.push_back(n);
    return CUDA_SUCCESS;
  }
  if (in_pinned) return enqueue(std::move(n));
  if (to_device) {
    n.staged = std::make_shared<std::vector<char>>(static_cast<const char*>(host), static_cast<const char*>(host) + bytes);
    return enqueue(std::move(n));
  }
  if (CUresult r = run_queue()) return r;
  return run_node(n);
}
}  // namespace

API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void* src, size_t bytes, void* stream) {
  std::lock_guard<std::recursive_mutex> g(lock);
  return async_copy(Node::HTOD, const_cast<void*>(src), dst, bytes, stream);
}

API CUresult cuMemcpyDtoHAsync_v2(void* dst, CUdeviceptr src, size_t bytes, void* stream) {
  std::lock_guard<std::recursive_mutex> g(lock);
  return async_copy(Node::DTOH, dst, src, bytes, stream);
}

API CUresult cuMemcpyDtoH_v2(void* dst, CUdeviceptr src, size_t bytes) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (CUresult r = reach_stream("cuMemcpyDtoH")) return r;
  if (CUresult r = refuse_in_capture("cuMemcpyDtoH", CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED)) return r;
  if (CUresult r = need_range("cuMemcpyDtoH", "source", uintptr_t(src), bytes)) return r;
  memcpy(dst, reinterpret_cast<const void*>(src), bytes);
  trace("dtoh " + std::to_string(bytes));
  return CUDA_SUCCESS;
}

API CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t bytes) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (CUresult r = reach_stream("cuMemcpyDtoD")) return r;
  if (CUresult r = refuse_in_capture("cuMemcpyDtoD", CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED)) return r;
  if (CUresult r = need_range("cuMemcpyDtoD", "source", uintptr_t(src), bytes)) return r;
  if (CUresult r = need_range("cuMemcpyDtoD", "destination", uintptr_t(dst), bytes)) return r;
  memmove(reinterpret_cast<void*>(dst), reinterpret_cast<const void*>(src), bytes);
  trace("dtod " + std::to_string(bytes));
  return CUDA_SUCCESS;
}

API CUresult cuMemsetD32_v2(CUdeviceptr dst, unsigned value, size_t count) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (CUresult r = reach_stream("cuMemsetD32")) return r;
  if (CUresult r = refuse_in_capture("cuMemsetD32", CUDA_ERROR_STREAM_CAPTURE_IMPLICIT)) return r;
  if (dst % 4 != 0) return fail(CUDA_ERROR_INVALID_VALUE, "cuMemsetD32: destination not 4-byte aligned");
  if (CUresult r = need_range("cuMemsetD32", "destination", uintptr_t(dst), count * 4)) return r;
  uint32_t* p = reinterpret_cast<uint32_t*>(dst);
  for (size_t i = 0; device_work() && i < count; i++) p[i] = value;
  trace("memset " + std::to_string(count * 4));
  return CUDA_SUCCESS;
}

namespace {

// The trace's line for a launch of k with the given parameters.
std::string launch_line(const KernelInfo& k, void** params, const unsigned* grid, const unsigned* block) {
  std::string line = std::string("launch ") + k.name + " " + std::to_string(grid[0]) + "x" + std::to_string(grid[1]) +
                     "x" + std::to_string(grid[2]) + " " + std::to_string(block[0] * block[1] * block[2]);
  for (size_t i = 0; i < k.sizes.size(); i++) line += " " + argument_text(k, i, params[i]);
  return line;
}

// Runs (and traces) one node of a graph.
CUresult run_node(const Node& n) {
  switch (n.kind) {
    case Node::HTOD:
      memcpy(reinterpret_cast<void*>(n.dst), n.staged != nullptr ? n.staged->data() : n.src, n.size);
      trace("htod " + std::to_string(n.size));
      return CUDA_SUCCESS;
    case Node::DTOH:
      memcpy(reinterpret_cast<void*>(n.dst), n.src, n.size);
      trace("dtoh " + std::to_string(n.size));
      return CUDA_SUCCESS;
    case Node::EVENT:
      // A queued event whose event was destroyed since records nothing.
      if (events.count(n.event) != 0) {
        n.event->reached = true;
        n.event->ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
      }
      trace("event");
      return CUDA_SUCCESS;
    case Node::MEMSET:
      for (size_t i = 0; device_work() && i < n.size; i++) reinterpret_cast<uint32_t*>(n.dst)[i] = n.value;
      trace("memset " + std::to_string(n.size * 4));
      return CUDA_SUCCESS;
    case Node::LAUNCH: {
      std::vector<void*> params;
      for (size_t o : n.offsets) params.push_back(const_cast<char*>(n.bytes.data()) + o);
      if (trace_file() != nullptr) trace(launch_line(*n.kernel, params.data(), n.grid, n.block));
      if (faults(n.kernel->name) || !device_work()) return CUDA_SUCCESS;
      return launch(*n.kernel, params.data(), n.grid[0], n.grid[1], n.grid[2], n.block[0], n.block[1], n.block[2]);
    }
  }
  return CUDA_ERROR_INVALID_VALUE;
}

// Runs the queue in order, up to and including the event `until` where it is given (and queued),
// else to its end. A node's error drops the rest, as a GPU's context is lost to an error in its
// queue, and is returned; so is a kernel's fault (CONVSPARK_CUDA_EMU_FAULT).
CUresult run_queue(const Event* until) {
  size_t end = queue.size();
  if (until != nullptr) {
    end = 0;
    for (size_t i = 0; i < queue.size(); i++) {
      if (queue[i].kind == Node::EVENT && queue[i].event == until) end = i + 1;
    }
  }
  std::vector<Node> run(std::make_move_iterator(queue.begin()), std::make_move_iterator(queue.begin() + end));
  queue.erase(queue.begin(), queue.begin() + end);
  for (const Node& n : run) {
    CUresult r = run_node(n);
    if (r == CUDA_SUCCESS && faulted != nullptr) r = need_no_fault("the device's queue");
    if (r != CUDA_SUCCESS) {
      queue.clear();
      return r;
    }
  }
  return CUDA_SUCCESS;
}

}  // namespace

API CUresult cuLaunchKernel(Function* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                            unsigned shared_bytes, void* stream, void** params, void** extra) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (CUresult r = need_context("cuLaunchKernel")) return r;
  if (f == nullptr) return fail(CUDA_ERROR_INVALID_HANDLE, "cuLaunchKernel: null function");
  Stream* st = static_cast<Stream*>(stream);
  if (CUresult r = need_stream("cuLaunchKernel", st)) return r;
  const KernelInfo& k = *f->kernel;
  std::string call = std::string("cuLaunchKernel(") + k.name + ")";
  unsigned long long threads_per_block = 1ULL * bx * by * bz;
  if (bx == 0 || by == 0 || bz == 0 || bx > 1024 || by > 1024 || bz > 64 || threads_per_block > MAX_THREADS) {
    return fail(CUDA_ERROR_INVALID_VALUE, call + ": block " + std::to_string(bx) + " x " + std::to_string(by) + " x " +
                                              std::to_string(bz) + " is outside the limits (1024 threads)");
  }
  if (f->max_threads != 0 && threads_per_block > f->max_threads) {
    return fail(CUDA_ERROR_INVALID_VALUE, call + ": a block of " + std::to_string(threads_per_block) +
                                              " threads, but the PTX allows it at most " +
                                              std::to_string(f->max_threads) + " (.maxntid, __launch_bounds__)");
  }
  if (gx == 0 || gy == 0 || gz == 0 || gx > 2147483647u || gy > 65535 || gz > 65535) {
    return fail(CUDA_ERROR_INVALID_VALUE, call + ": grid " + std::to_string(gx) + " x " + std::to_string(gy) + " x " +
                                              std::to_string(gz) + " is outside the limits (2^31-1 x 65535 x 65535)");
  }
  if (shared_bytes != 0) return fail(CUDA_ERROR_NOT_SUPPORTED, call + ": dynamic shared memory is not emulated");
  std::vector<void*> packed;
  if (extra != nullptr) {
    if (params != nullptr) return fail(CUDA_ERROR_INVALID_VALUE, call + ": both kernelParams and extra");
    if (CUresult r = unpack_extra(k, call, extra, packed)) return r;
    params = packed.data();
  }
  if (params == nullptr && !k.sizes.empty()) return fail(CUDA_ERROR_INVALID_VALUE, call + ": no parameters");
  for (size_t i = 0; i < k.sizes.size(); i++) {
    if (params[i] == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, call + ": parameter " + std::to_string(i) + " is null");
    if (k.pointers[i]) {
      uintptr_t p = *static_cast<uintptr_t*>(params[i]);
      if (p != 0 && find(p, 0) == nullptr) {
        return fail(CUDA_ERROR_INVALID_VALUE, call + ": parameter " + std::to_string(i) + " (" + hex(p) +
                                                  ") is not inside a device allocation");
      }
    }
  }
  // Queued or captured: the arguments' values now, laid out as the kernel's parameters.
  Node n{};
  n.kind = Node::LAUNCH;
  n.kernel = &k;
  n.grid[0] = gx, n.grid[1] = gy, n.grid[2] = gz;
  n.block[0] = bx, n.block[1] = by, n.block[2] = bz;
  for (size_t i = 0; i < k.sizes.size(); i++) {
    n.offsets.push_back(n.bytes.size());
    n.bytes.insert(n.bytes.end(), static_cast<char*>(params[i]), static_cast<char*>(params[i]) + k.sizes[i]);
  }
  if (st != nullptr && st->capture != nullptr) {
    st->capture->nodes.push_back(std::move(n));
    return CUDA_SUCCESS;
  }
  return enqueue(std::move(n));
}

API CUresult cuMemsetD32Async(CUdeviceptr dst, unsigned value, size_t count, void* stream) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (CUresult r = need_context("cuMemsetD32Async")) return r;
  Stream* st = static_cast<Stream*>(stream);
  if (CUresult r = need_stream("cuMemsetD32Async", st)) return r;
  if (dst % 4 != 0) return fail(CUDA_ERROR_INVALID_VALUE, "cuMemsetD32Async: destination not 4-byte aligned");
  if (CUresult r = need_range("cuMemsetD32Async", "destination", uintptr_t(dst), count * 4)) return r;
  Node n{};
  n.kind = Node::MEMSET;
  n.dst = uintptr_t(dst);
  n.size = count;
  n.value = value;
  if (st != nullptr && st->capture != nullptr) {
    st->capture->nodes.push_back(n);
    return CUDA_SUCCESS;
  }
  return enqueue(std::move(n));
}

API CUresult cuStreamCreate(Stream** stream, unsigned flags) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (CUresult r = need_context("cuStreamCreate")) return r;
  if (stream == nullptr) return CUDA_ERROR_INVALID_VALUE;
  (void) flags;
  *stream = new Stream{current_context, nullptr, false, true, std::this_thread::get_id()};
  streams.insert(*stream);
  return CUDA_SUCCESS;
}

API CUresult cuStreamDestroy_v2(Stream* stream) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (streams.count(stream) == 0) return fail(CUDA_ERROR_INVALID_HANDLE, "cuStreamDestroy: not a stream");
  if (stream->capture != nullptr) {
    return fail(CUDA_ERROR_ILLEGAL_STATE, "cuStreamDestroy: the stream is capturing (end the capture first)");
  }
  streams.erase(stream);
  delete stream;
  return CUDA_SUCCESS;
}

API CUresult cuStreamSynchronize(Stream* stream) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (CUresult r = reach_stream("cuStreamSynchronize")) return r;
  if (stream != nullptr && streams.count(stream) == 0) {
    return fail(CUDA_ERROR_INVALID_HANDLE, "cuStreamSynchronize: not a stream");
  }
  if (CUresult r = refuse_in_capture("cuStreamSynchronize", CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED)) return r;
  trace("sync");
  return CUDA_SUCCESS;
}

API CUresult cuStreamBeginCapture_v2(Stream* stream, int mode) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (CUresult r = need_context("cuStreamBeginCapture")) return r;
  if (stream == nullptr) {
    return fail(CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "cuStreamBeginCapture: the legacy stream cannot be captured");
  }
  if (streams.count(stream) == 0 || stream->context != current_context) {
    return fail(CUDA_ERROR_INVALID_HANDLE, "cuStreamBeginCapture: not a stream of the current context");
  }
  if (mode != 0 && mode != 1) {
    return fail(CUDA_ERROR_NOT_SUPPORTED, "cuStreamBeginCapture: only the global and thread-local modes are emulated");
  }
  if (env_int("CONVSPARK_CUDA_EMU_GRAPHS", 1) == 0) {
    return fail(CUDA_ERROR_NOT_SUPPORTED, "cuStreamBeginCapture: refused (CONVSPARK_CUDA_EMU_GRAPHS=0)");
  }
  if (capturing() != nullptr) {
    return fail(CUDA_ERROR_ILLEGAL_STATE, "cuStreamBeginCapture: a stream of this context is capturing already");
  }
  stream->capture = new Graph{current_context, {}};
  stream->invalidated = false;
  stream->global = mode == 0;
  stream->thread = std::this_thread::get_id();
  return CUDA_SUCCESS;
}

API CUresult cuStreamEndCapture(Stream* stream, Graph** graph) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (CUresult r = need_context("cuStreamEndCapture")) return r;
  if (graph == nullptr) return CUDA_ERROR_INVALID_VALUE;
  if (stream == nullptr || streams.count(stream) == 0 || stream->capture == nullptr) {
    return fail(CUDA_ERROR_ILLEGAL_STATE, "cuStreamEndCapture: the stream is not capturing");
  }
  Graph* captured = stream->capture;
  stream->capture = nullptr;
  if (stream->invalidated) {
    delete captured;
    *graph = nullptr;
    return fail(CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, "cuStreamEndCapture: the capture was invalidated");
  }
  graphs.insert(captured);
  *graph = captured;
  trace("capture " + std::to_string(captured->nodes.size()));
  return CUDA_SUCCESS;
}

API CUresult cuGraphInstantiateWithFlags(GraphExec** exec, Graph* graph, unsigned long long flags) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (CUresult r = need_context("cuGraphInstantiate")) return r;
  if (exec == nullptr || graphs.count(graph) == 0) return fail(CUDA_ERROR_INVALID_VALUE, "cuGraphInstantiate: not a graph");
  (void) flags;
  *exec = new GraphExec{graph->context, graph->nodes};
  graph_execs.insert(*exec);
  return CUDA_SUCCESS;
}

API CUresult cuGraphLaunch(GraphExec* exec, Stream* stream) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (CUresult r = need_context("cuGraphLaunch")) return r;
  if (graph_execs.count(exec) == 0) return fail(CUDA_ERROR_INVALID_HANDLE, "cuGraphLaunch: not an instantiated graph");
  if (CUresult r = need_stream("cuGraphLaunch", stream)) return r;
  if (stream != nullptr && stream->capture != nullptr) {
    return fail(CUDA_ERROR_NOT_SUPPORTED, "cuGraphLaunch: launching a graph into a capture is not emulated");
  }
  if (exec->context != current_context) {
    return fail(CUDA_ERROR_INVALID_CONTEXT, "cuGraphLaunch: the graph belongs to another context");
  }
  trace("graph " + std::to_string(exec->nodes.size()));
  for (const Node& n : exec->nodes) {
    if (CUresult r = enqueue(n)) return r;
  }
  return CUDA_SUCCESS;
}

API CUresult cuGraphExecDestroy(GraphExec* exec) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (graph_execs.erase(exec) == 0) return fail(CUDA_ERROR_INVALID_HANDLE, "cuGraphExecDestroy: not an instantiated graph");
  delete exec;
  return CUDA_SUCCESS;
}

API CUresult cuGraphDestroy(Graph* graph) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (graphs.erase(graph) == 0) return fail(CUDA_ERROR_INVALID_HANDLE, "cuGraphDestroy: not a graph");
  delete graph;
  return CUDA_SUCCESS;
}

API CUresult cuEventCreate(Event** event, unsigned flags) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (CUresult r = need_context("cuEventCreate")) return r;
  if (event == nullptr) return CUDA_ERROR_INVALID_VALUE;
  (void) flags;
  *event = new Event{current_context, false, false, 0};
  events.insert(*event);
  return CUDA_SUCCESS;
}

API CUresult cuEventRecord(Event* event, void* stream) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (CUresult r = need_context("cuEventRecord")) return r;
  if (events.count(event) == 0) return fail(CUDA_ERROR_INVALID_HANDLE, "cuEventRecord: not an event");
  Stream* st = static_cast<Stream*>(stream);
  if (CUresult r = need_stream("cuEventRecord", st)) return r;
  if (st != nullptr && st->capture != nullptr) {
    return fail(CUDA_ERROR_NOT_SUPPORTED, "cuEventRecord: events in a capture are not emulated");
  }
  event->recorded = true;
  event->reached = false;
  Node n{};
  n.kind = Node::EVENT;
  n.event = event;
  return enqueue(std::move(n));
}

API CUresult cuEventSynchronize(Event* event) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (CUresult r = need_context("cuEventSynchronize")) return r;
  if (CUresult r = refuse_in_capture("cuEventSynchronize", CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED)) return r;
  if (events.count(event) == 0) return fail(CUDA_ERROR_INVALID_HANDLE, "cuEventSynchronize: not an event");
  // The queue up to the event's last record, no further: what was queued after it may not have run.
  if (CUresult r = run_queue(event)) return r;
  trace("sync");
  return CUDA_SUCCESS;
}

API CUresult cuEventElapsedTime(float* ms, Event* start, Event* end) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (CUresult r = need_context("cuEventElapsedTime")) return r;
  if (ms == nullptr) return CUDA_ERROR_INVALID_VALUE;
  if (events.count(start) == 0 || events.count(end) == 0 || !start->recorded || !end->recorded) {
    return fail(CUDA_ERROR_INVALID_HANDLE, "cuEventElapsedTime: an event that is not one or was never recorded");
  }
  if (!start->reached || !end->reached) {
    return fail(CUDA_ERROR_NOT_READY, "cuEventElapsedTime: an event the device has not reached yet (wait for it first)");
  }
  *ms = float(end->ms - start->ms);
  return CUDA_SUCCESS;
}

API CUresult cuEventDestroy_v2(Event* event) {
  std::lock_guard<std::recursive_mutex> g(lock);
  if (events.count(event) == 0) return fail(CUDA_ERROR_INVALID_HANDLE, "cuEventDestroy: not an event");
  events.erase(event);
  delete event;
  return CUDA_SUCCESS;
}

API CUresult cuGetErrorName(CUresult error, const char** name) {
  if (name == nullptr) return CUDA_ERROR_INVALID_VALUE;
  switch (error) {
#define CU_RESULT_NAME(code, value) \
  case code:                        \
    *name = #code;                  \
    return CUDA_SUCCESS;
    CU_RESULTS(CU_RESULT_NAME)
#undef CU_RESULT_NAME
    default:
      return CUDA_ERROR_INVALID_VALUE;
  }
}

API CUresult cuGetErrorString(CUresult error, const char** text) { return cuGetErrorName(error, text); }
