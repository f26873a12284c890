// ThreadPool implementation (see thread_pool.h for the contract and the waiting strategy).
#include "core/thread_pool.h"

#include "core/cpu_features.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BILLION_PAUSE() _mm_pause()
#else
#define BILLION_PAUSE() std::this_thread::yield()
#endif

namespace billion {
namespace {

// About 10-50 µs of spinning on current x86 (a pause is ~10-140 cycles depending on the core):
// long enough to bridge back-to-back loops in a forward pass, short enough not to burn a core
// that another process needs.
constexpr int kSpinIterations = 4000;

thread_local bool tl_inside_pool = false;

}  // namespace

int ThreadPool::default_thread_count() { return physical_core_count(); }

ThreadPool::ThreadPool(int n_threads) {
  n_threads_ = n_threads > 0 ? n_threads : default_thread_count();
  if (n_threads_ < 1) n_threads_ = 1;
  workers_.reserve(n_threads_ - 1);
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_share(int index) {
  // Ranges are whole groups of `grain` items; group g belongs to thread g * n / groups.
  int64_t groups = (n_items_ + grain_ - 1) / grain_;
  int64_t g0 = groups * index / n_threads_;
  int64_t g1 = groups * (index + 1) / n_threads_;
  int64_t begin = g0 * grain_;
  int64_t end = g1 * grain_ < n_items_ ? g1 * grain_ : n_items_;
  if (begin >= end) return;
  try {
    (*fn_)(begin, end);
  } catch (...) {
    std::lock_guard<std::mutex> lock(error_mutex_);
    if (!error_) error_ = std::current_exception();
  }
}

void ThreadPool::run_unclaimed() {
  for (;;) {
    const int share = next_share_.fetch_add(1, std::memory_order_acq_rel);
    if (share >= n_threads_) return;
    run_share(share);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
  }
}

void ThreadPool::worker_loop() {
  tl_inside_pool = true;
  uint32_t seen = 0;
  for (;;) {
    uint32_t g = generation_.load(std::memory_order_acquire);
    for (int spin = 0; g == seen && spin < kSpinIterations; ++spin) {
      BILLION_PAUSE();
      g = generation_.load(std::memory_order_acquire);
    }
    while (g == seen) {
      generation_.wait(seen, std::memory_order_acquire);
      g = generation_.load(std::memory_order_acquire);
    }
    seen = g;
    if (stop_.load(std::memory_order_acquire)) return;
    run_unclaimed();
  }
}

void ThreadPool::parallel_for(int64_t n_items, const RangeFn& fn, int64_t grain) {
  if (n_items <= 0) return;
  if (grain < 1) grain = 1;
  // Serial when there is one thread, one group of work, or we are already inside a job
  // (a nested call would wait for workers that are busy running its parent).
  if (n_threads_ == 1 || n_items <= grain || tl_inside_pool) {
    fn(0, n_items);
    return;
  }
  std::lock_guard<std::mutex> call_lock(call_mutex_);
  fn_ = &fn;
  n_items_ = n_items;
  grain_ = grain;
  error_ = nullptr;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  next_share_.store(1, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();

  tl_inside_pool = true;
  run_share(0);
  // Shares no worker has claimed yet: run them here rather than wait for a worker that may not
  // have a CPU (see thread_pool.h).
  run_unclaimed();
  tl_inside_pool = false;

  int left = pending_.load(std::memory_order_acquire);
  for (int spin = 0; left != 0 && spin < kSpinIterations; ++spin) {
    BILLION_PAUSE();
    left = pending_.load(std::memory_order_acquire);
  }
  while (left != 0) {
    pending_.wait(left, std::memory_order_acquire);
    left = pending_.load(std::memory_order_acquire);
  }
  fn_ = nullptr;
  if (error_) std::rethrow_exception(error_);
}

}  // namespace billion
