// A fixed set of worker threads running one data-parallel loop at a time.
//
// parallel_for splits [0, n_items) into one contiguous range ("share") per thread. Every output
// element is computed by exactly one call of fn, and kernels do not reduce across threads, so
// results are bitwise identical for any thread count and whichever thread runs a share.
//
// Shares are claimed, not assigned: a worker runs share i only if it claims it first, and the
// caller, once done with share 0, claims and runs every share no worker has started yet. On a
// shared machine a worker is often descheduled or still waking from a futex when a small job
// (one decode matmul: ~10-100 µs) is posted; the caller then finishes the job alone instead of
// waiting for that worker to get a CPU (perf showed ~12 % of decode time in that wait).
// Kernels that hand out work dynamically (matmul's row chunks) lose nothing: a late share
// finds no chunks left.
//
// Waiting: a worker spins briefly on the generation counter (a decode step issues hundreds of
// small loops a second, where a sleep/wake costs more than the work), then blocks with
// std::atomic::wait, which is a futex on Linux.
#pragma once
#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace billion {

class ThreadPool {
 public:
  using RangeFn = std::function<void(int64_t begin, int64_t end)>;

  // n_threads counts the calling thread, which takes the first range; 0 = physical cores.
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(begin, end) on disjoint ranges covering [0, n_items); range boundaries are
  // multiples of `grain` (except the final end). Returns when all ranges are done; the first
  // exception thrown by fn is rethrown here. A call from inside fn runs serially. Any thread of
  // the pool, the caller included, may run any range (see above).
  void parallel_for(int64_t n_items, const RangeFn& fn, int64_t grain = 1);

  // Physical cores available to this process (core/cpu_features.h).
  static int default_thread_count();

 private:
  void worker_loop();
  void run_share(int index);
  // Claims and runs unclaimed shares of the current job until none is left.
  void run_unclaimed();

  int n_threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex call_mutex_;  // one parallel_for at a time from outside
  std::atomic<uint32_t> generation_{0};
  std::atomic<int> pending_{0};  // shares not finished yet (claimed or not), the caller's excluded
  // The next share to claim (shares 1..n_threads-1; 0 is the caller's). Reset to 1 (release)
  // after the job's fields are written and before generation_ is bumped; a claim is a fetch_add
  // (acquire), so a claimer sees the job whose reset it incremented, even a worker that woke up
  // for an older generation. The caller claims every share before it returns, so a claim that
  // lands between jobs gets an index past the end.
  std::atomic<int> next_share_{0};
  std::atomic<bool> stop_{false};
  // The current job, written before generation_ is bumped (release) and read after (acquire).
  const RangeFn* fn_ = nullptr;
  int64_t n_items_ = 0;
  int64_t grain_ = 1;
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

}  // namespace billion
