// Running untrusted, model-generated Python (HumanEval completions) without harming the host.
//
// Each program runs in a child `python3 -I` started with clone()+execve (never a shell), with:
//  - a wall-clock limit enforced by the parent (SIGKILL of the whole process group), plus
//    RLIMIT_CPU, RLIMIT_AS (memory), RLIMIT_FSIZE, RLIMIT_NPROC (fork bombs), RLIMIT_CORE = 0;
//  - new PID, network and mount namespaces where the kernel allows them: no network at all
//    (only a down loopback), every process it spawns dies with it (PID-namespace init), /tmp,
//    /var/tmp and /dev/shm read-only; as root the program additionally runs as `nobody`, so
//    RLIMIT_NPROC applies and nothing outside its directory is writable;
//  - a fresh private working directory (removed afterwards), stdin from /dev/null, and an
//    environment built from scratch (PATH, LANG, HOME=workdir, ...): nothing inherited, so
//    secrets such as HF_TOKEN never reach it;
//  - stdout and stderr captured through one pipe with a size cap: past the cap the program is
//    killed, so printing gigabytes costs neither memory nor time.
// What is not available on this kernel is reported once on stderr (Sandbox::isolation()).
#pragma once
#include <cstdint>
#include <string>

namespace billion::eval {

struct SandboxLimits {
  double wall_seconds = 3.0;          // HumanEval's standard per-sample timeout
  int cpu_seconds = 0;                // 0 = ceil(wall_seconds) + 1
  uint64_t memory_bytes = 1ull << 30;  // RLIMIT_AS
  uint64_t file_bytes = 16ull << 20;   // RLIMIT_FSIZE: largest file it may write
  int max_processes = 64;              // RLIMIT_NPROC (per user; enforced when not root)
  uint64_t max_output_bytes = 1ull << 20;  // stdout+stderr beyond this: killed
  uint64_t kept_output_bytes = 16 << 10;   // how much of the output is kept for messages
};

enum class SandboxStatus {
  Passed,       // exit status 0
  Failed,       // non-zero exit or killed by a signal (exception, assertion, MemoryError...)
  TimedOut,     // wall-clock limit reached (or CPU limit: SIGXCPU)
  OutputLimit,  // printed more than max_output_bytes
};

struct SandboxResult {
  SandboxStatus status = SandboxStatus::Failed;
  int exit_code = -1;  // when it exited
  int signal = 0;      // when a signal ended it
  std::string output;  // first kept_output_bytes of stdout+stderr
  uint64_t output_bytes = 0;  // all bytes it wrote (up to the point it was killed)
  double seconds = 0;
  bool passed() const { return status == SandboxStatus::Passed; }
  // "passed", "timed out", "output limit", "failed: <last line of the output>"
  std::string summary() const;
};

// What the kernel allowed (probed once per process).
struct SandboxIsolation {
  bool pid_namespace = false;
  bool network_namespace = false;
  bool mount_namespace = false;
  bool user_namespace = false;   // used when not root, to get the other namespaces
  bool drops_to_nobody = false;  // running as root: the program runs as uid/gid 65534
  std::string describe() const;
};

class Sandbox {
 public:
  // `python`: interpreter path or name looked up in PATH (resolved to its real executable, as
  // root preferring one the user nobody can run); empty = "python3". Throws
  // billion::Error saying how to install Python when it cannot be found.
  explicit Sandbox(SandboxLimits limits = {}, const std::string& python = "");
  // Runs one program. Thread-safe: several may run at once from different threads.
  SandboxResult run(const std::string& program) const;
  const SandboxLimits& limits() const { return limits_; }
  const std::string& python() const { return python_; }
  static const SandboxIsolation& isolation();
  // Running as root with an interpreter nobody can execute, programs stay root (a warning says so).
  bool drops_privileges() const { return drop_privileges_; }

 private:
  SandboxLimits limits_;
  std::string python_;
  bool drop_privileges_ = false;
};

// The program HumanEval executes for one sample (human_eval/execution.py):
// prompt + completion + "\n" + test + "\n" + "check(entry_point)".
std::string humaneval_program(const std::string& prompt, const std::string& completion, const std::string& test,
                              const std::string& entry_point);

// Unbiased pass@k of one problem with n samples of which c passed (Chen et al. 2021):
// 1 - C(n-c, k) / C(n, k), computed as 1 - prod_{i=n-c+1..n} (1 - k/i); 1 when n - c < k.
double pass_at_k(int n, int c, int k);

}  // namespace billion::eval
