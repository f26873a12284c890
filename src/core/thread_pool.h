// A fixed set of worker threads running one data-parallel loop at a time.
//
// parallel_for splits [0, n_items) into one contiguous range per thread (static, so the same
// item always goes to the same thread for a given size, and a thread streams one region of a
// weight matrix). Every output element is computed by exactly one thread, and kernels do not
// reduce across threads, so results are bitwise identical for any thread count.
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
  // exception thrown by fn is rethrown here. A call from inside fn runs serially.
  void parallel_for(int64_t n_items, const RangeFn& fn, int64_t grain = 1);

  // Physical cores available to this process (core/cpu_features.h).
  static int default_thread_count();

 private:
  void worker_loop(int index);
  void run_share(int index);

  int n_threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex call_mutex_;  // one parallel_for at a time from outside
  std::atomic<uint32_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  // The current job, written before generation_ is bumped (release) and read after (acquire).
  const RangeFn* fn_ = nullptr;
  int64_t n_items_ = 0;
  int64_t grain_ = 1;
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

}  // namespace billion
