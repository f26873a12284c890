// The HumanEval sandbox (see sandbox.h for the list of protections). The child is created with
// clone() so it can start as the init process of new PID/network/mount namespaces; between clone
// and execve it only makes system calls (the parent is multi-threaded, so nothing that could take
// a lock such as malloc or stdio may run there).
#include "eval/sandbox.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <vector>

#include "core/error.h"

namespace billion::eval {
namespace {

constexpr uid_t kNobody = 65534;

bool is_executable(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// True when a process running as `nobody` may execute `path` (every directory on the way
// searchable by others, the file executable and readable by others).
bool runnable_by_others(const std::string& path) {
  std::error_code ec;
  std::filesystem::path real = std::filesystem::canonical(path, ec);
  if (ec) return false;
  struct stat st{};
  if (::stat(real.c_str(), &st) != 0 || (st.st_mode & (S_IXOTH | S_IROTH)) != (S_IXOTH | S_IROTH)) return false;
  for (auto dir = real.parent_path(); ; dir = dir.parent_path()) {
    if (::stat(dir.c_str(), &st) != 0 || !(st.st_mode & S_IXOTH)) return false;
    if (dir == dir.root_path()) return true;
  }
}

// The interpreter's real executable (sys.executable): PATH entries are often wrapper scripts
// (pyenv shims) that need environment variables the sandbox does not pass.
std::string real_executable(const std::string& python) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return python;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    int null_fd = ::open("/dev/null", O_RDWR);
    ::dup2(null_fd, 0);
    ::dup2(null_fd, 2);
    ::execl(python.c_str(), python.c_str(), "-c", "import sys; print(sys.executable)", static_cast<char*>(nullptr));
    _exit(127);
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; pid > 0 && (n = ::read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, n);
  ::close(fds[0]);
  int status = 0;
  if (pid > 0) while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  if (pid <= 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || out.empty() || !is_executable(out))
    fail(python, "this Python interpreter does not run (exit status {}); HumanEval needs a working python3", WEXITSTATUS(status));
  return out;
}

std::string find_python(const std::string& requested) {
  std::string name = requested.empty() ? "python3" : requested;
  const char* how = "install Python 3 (e.g. apt-get install python3) or name the interpreter with --python";
  if (name.find('/') != std::string::npos) {
    if (!is_executable(name)) fail(name, "no Python interpreter there (HumanEval runs each program in one); {}", how);
    return real_executable(name);
  }
  const char* path_env = std::getenv("PATH");
  std::string path = path_env ? path_env : "/usr/local/bin:/usr/bin:/bin";
  std::string first;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    start = end + 1;
    if (dir.empty() || !is_executable(dir + "/" + name)) continue;
    std::string real = real_executable(dir + "/" + name);
    // As root the program runs as nobody, which must be able to execute the interpreter (a
    // Python under /root usually is not); prefer the first one it can.
    if (::geteuid() != 0 || runnable_by_others(real)) return real;
    if (first.empty()) first = real;
  }
  if (!first.empty()) return first;
  fail(name, "no Python interpreter found in PATH (HumanEval runs each program in one); {}", how);
}

// Forks a child that tries unshare(flags) and reports whether it worked.
bool can_unshare(int flags) {
  pid_t pid = ::fork();
  if (pid < 0) return false;
  if (pid == 0) _exit(::unshare(flags) == 0 ? 0 : 1);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

SandboxIsolation probe_isolation() {
  SandboxIsolation iso;
  bool root = ::geteuid() == 0;
  int user = 0;
  if (!root) {
    iso.user_namespace = can_unshare(CLONE_NEWUSER);
    if (!iso.user_namespace) return iso;
    user = CLONE_NEWUSER;
  }
  iso.drops_to_nobody = root;
  iso.pid_namespace = can_unshare(user | CLONE_NEWPID);
  iso.network_namespace = can_unshare(user | CLONE_NEWNET);
  iso.mount_namespace = can_unshare(user | CLONE_NEWNS);
  return iso;
}

// Everything the child needs, prepared by the parent before clone().
struct ChildSetup {
  const char* python;
  std::vector<char*> argv, envp;
  const char* workdir;
  int output_fd;  // write end of the output pipe
  int error_fd;   // write end of the setup-error pipe (close-on-exec)
  bool mount_namespace, user_namespace, drop_privileges;
  uid_t outer_uid;
  gid_t outer_gid;
  rlim_t cpu, memory, file, nproc;
};

// Async-signal-safe error report: "<step> failed: errno <n>".
[[noreturn]] void child_fail(const ChildSetup& s, const char* step) {
  int err = errno;
  char buf[160];
  size_t n = 0;
  auto put = [&](const char* t) {
    while (*t && n < sizeof(buf) - 1) buf[n++] = *t++;
  };
  put(step);
  put(" failed: errno ");
  char digits[12];
  int d = 0;
  do {
    digits[d++] = static_cast<char>('0' + err % 10);
    err /= 10;
  } while (err > 0 && d < 11);
  while (d > 0 && n < sizeof(buf) - 1) buf[n++] = digits[--d];
  ssize_t ignored = ::write(s.error_fd, buf, n);
  (void)ignored;
  _exit(127);
}

void write_file_raw(const char* path, const char* text) {
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t ignored = ::write(fd, text, std::strlen(text));
  (void)ignored;
  ::close(fd);
}

int child_main(void* arg) {
  const ChildSetup& s = *static_cast<const ChildSetup*>(arg);
  ::setpgid(0, 0);  // its own process group, killed as a whole afterwards
  int null_fd = ::open("/dev/null", O_RDONLY);
  if (null_fd < 0 || ::dup2(null_fd, 0) < 0) child_fail(s, "stdin /dev/null");
  if (::dup2(s.output_fd, 1) < 0 || ::dup2(s.output_fd, 2) < 0) child_fail(s, "stdout/stderr pipe");
  if (s.user_namespace) {
    // Map our own ids so files we create belong to us (the only mapping allowed unprivileged).
    char map[64];
    write_file_raw("/proc/self/setgroups", "deny");
    std::snprintf(map, sizeof map, "%u %u 1", s.outer_uid, s.outer_uid);
    write_file_raw("/proc/self/uid_map", map);
    std::snprintf(map, sizeof map, "%u %u 1", s.outer_gid, s.outer_gid);
    write_file_raw("/proc/self/gid_map", map);
  }
  if (s.mount_namespace) {
    // Private copy of the mount table; the working directory becomes its own (writable) mount
    // first, so that remounting the shared scratch places read-only below leaves it writable.
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) child_fail(s, "making mounts private");
    if (::mount(s.workdir, s.workdir, nullptr, MS_BIND, nullptr) != 0) child_fail(s, "binding the working directory");
    for (const char* dir : {"/tmp", "/var/tmp", "/dev/shm"}) {
      if (::mount(dir, dir, nullptr, MS_BIND | MS_REC, nullptr) == 0)
        ::mount(nullptr, dir, nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr);
    }
    // A /proc of the new PID namespace: the program sees only its own processes.
    ::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
  }
  if (::chdir(s.workdir) != 0) child_fail(s, "chdir to the working directory");
  auto limit = [&](int resource, rlim_t soft, rlim_t hard, const char* what) {
    struct rlimit rl{soft, hard};
    if (::setrlimit(resource, &rl) != 0) child_fail(s, what);
  };
  limit(RLIMIT_CPU, s.cpu, s.cpu + 1, "RLIMIT_CPU");
  limit(RLIMIT_AS, s.memory, s.memory, "RLIMIT_AS");
  limit(RLIMIT_FSIZE, s.file, s.file, "RLIMIT_FSIZE");
  limit(RLIMIT_NPROC, s.nproc, s.nproc, "RLIMIT_NPROC");
  limit(RLIMIT_CORE, 0, 0, "RLIMIT_CORE");
  if (s.drop_privileges) {
    // Raw system calls: glibc's setuid() in a multi-threaded process signals every thread it
    // knows of and waits for them; this clone() child has only one, so it would wait forever.
    if (::syscall(SYS_setgroups, 0, nullptr) != 0) child_fail(s, "setgroups");
    if (::syscall(SYS_setgid, kNobody) != 0) child_fail(s, "setgid(nobody)");
    if (::syscall(SYS_setuid, kNobody) != 0) child_fail(s, "setuid(nobody)");
  }
  ::execve(s.python, s.argv.data(), s.envp.data());
  child_fail(s, "execve of the Python interpreter");
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string make_workdir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/billion-sandbox-XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) fail(pattern, "cannot create the sandbox's working directory: {}", std::strerror(errno));
  return buf.data();
}

}  // namespace

std::string SandboxIsolation::describe() const {
  std::string s;
  auto add = [&](bool on, const char* what) {
    if (!on) return;
    if (!s.empty()) s += ", ";
    s += what;
  };
  add(pid_namespace, "PID namespace");
  add(network_namespace, "network namespace (no network)");
  add(mount_namespace, "mount namespace (/tmp read-only)");
  add(user_namespace, "user namespace");
  add(drops_to_nobody, "runs as nobody");
  return s.empty() ? "rlimits only" : s;
}

std::string SandboxResult::summary() const {
  switch (status) {
    case SandboxStatus::Passed: return "passed";
    case SandboxStatus::TimedOut: return "timed out";
    case SandboxStatus::OutputLimit: return "failed: output limit exceeded";
    case SandboxStatus::Failed: break;
  }
  // The last non-empty line of the output is usually the exception ("AssertionError").
  size_t end = output.find_last_not_of(" \n\r\t");
  if (end == std::string::npos) return signal ? "failed: signal " + std::to_string(signal) : "failed";
  size_t begin = output.rfind('\n', end);
  begin = begin == std::string::npos ? 0 : begin + 1;
  return "failed: " + output.substr(begin, end + 1 - begin);
}

const SandboxIsolation& Sandbox::isolation() {
  static const SandboxIsolation iso = [] {
    SandboxIsolation probed = probe_isolation();
    if (!probed.network_namespace || !probed.pid_namespace)
      std::fprintf(stderr,
                   "warning: sandbox: the kernel refused new %s namespaces here; generated code runs with %s only "
                   "(it may reach the network, and processes that leave its process group survive it)\n",
                   probed.network_namespace ? "PID" : probed.pid_namespace ? "network" : "PID and network",
                   probed.describe().c_str());
    return probed;
  }();
  return iso;
}

Sandbox::Sandbox(SandboxLimits limits, const std::string& python) : limits_(limits), python_(find_python(python)) {
  const SandboxIsolation& iso = isolation();  // probe now, so the warning (if any) comes once and early
  drop_privileges_ = iso.drops_to_nobody && runnable_by_others(python_);
  static std::once_flag warned;
  if (iso.drops_to_nobody && !drop_privileges_)
    std::call_once(warned, [&] {
      std::fprintf(stderr,
                   "warning: sandbox: %s is not executable by the user nobody, so generated code runs as root "
                   "(inside its namespaces); use a system Python (e.g. --python /usr/bin/python3)\n",
                   python_.c_str());
    });
}

SandboxResult Sandbox::run(const std::string& program) const {
  const SandboxIsolation& iso = isolation();
  std::string workdir = make_workdir();
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);  // does not follow symlinks the program left there
    }
  } cleanup{workdir};
  {
    std::ofstream out(workdir + "/program.py", std::ios::binary);
    out << program;
    if (!out) fail(workdir + "/program.py", "cannot write the program");
  }
  if (drop_privileges_ && ::chown(workdir.c_str(), kNobody, kNobody) != 0)
    fail(workdir, "cannot hand the sandbox directory to nobody: {}", std::strerror(errno));

  std::vector<std::string> env_strings = {
      "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "HOME=" + workdir, "TMPDIR=" + workdir,
      "PYTHONDONTWRITEBYTECODE=1", "PYTHONIOENCODING=utf-8", "OMP_NUM_THREADS=1"};
  std::vector<std::string> arg_strings = {python_, "-I", "-B", "program.py"};
  ChildSetup setup{};
  setup.python = python_.c_str();
  for (auto& a : arg_strings) setup.argv.push_back(a.data());
  setup.argv.push_back(nullptr);
  for (auto& e : env_strings) setup.envp.push_back(e.data());
  setup.envp.push_back(nullptr);
  setup.workdir = workdir.c_str();
  setup.mount_namespace = iso.mount_namespace;
  setup.user_namespace = iso.user_namespace;
  setup.drop_privileges = drop_privileges_;
  setup.outer_uid = ::geteuid();
  setup.outer_gid = ::getegid();
  setup.cpu = limits_.cpu_seconds > 0 ? limits_.cpu_seconds : static_cast<rlim_t>(std::ceil(limits_.wall_seconds)) + 1;
  setup.memory = limits_.memory_bytes;
  setup.file = limits_.file_bytes;
  setup.nproc = limits_.max_processes;

  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0)
    fail("sandbox", "pipe: {}", std::strerror(errno));
  setup.output_fd = out_pipe[1];
  setup.error_fd = err_pipe[1];

  int flags = SIGCHLD;
  if (iso.user_namespace) flags |= CLONE_NEWUSER;
  if (iso.pid_namespace) flags |= CLONE_NEWPID;
  if (iso.network_namespace) flags |= CLONE_NEWNET;
  if (iso.mount_namespace) flags |= CLONE_NEWNS;
  std::vector<char> stack(256 << 10);
  auto start = std::chrono::steady_clock::now();
  pid_t pid = ::clone(child_main, stack.data() + stack.size(), flags, &setup);
  int clone_errno = errno;
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (pid < 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    fail("sandbox", "cannot start the Python process: {}", std::strerror(clone_errno));
  }
  ::setpgid(pid, pid);  // also done by the child; whichever runs first wins, same result
  ::fcntl(out_pipe[0], F_SETFL, O_NONBLOCK);

  SandboxResult result;
  bool killed_for_time = false, killed_for_output = false;
  auto drain = [&] {
    char buf[65536];
    for (;;) {
      ssize_t n = ::read(out_pipe[0], buf, sizeof buf);
      if (n <= 0) return;
      uint64_t keep = limits_.kept_output_bytes > result.output.size() ? limits_.kept_output_bytes - result.output.size() : 0;
      result.output.append(buf, std::min<uint64_t>(keep, n));
      result.output_bytes += n;
      if (result.output_bytes > limits_.max_output_bytes && !killed_for_output && !killed_for_time) {
        killed_for_output = true;
        ::kill(-pid, SIGKILL);
        ::kill(pid, SIGKILL);
        return;
      }
    }
  };
  for (;;) {
    double remaining = limits_.wall_seconds - seconds_since(start);
    struct pollfd pfd{out_pipe[0], POLLIN, 0};
    int wait_ms = static_cast<int>(std::clamp(remaining * 1000.0, 0.0, 20.0));
    ::poll(&pfd, 1, wait_ms);
    drain();
    siginfo_t info{};
    // WNOWAIT keeps the zombie, so its pid (= the group id) cannot be reused before the group
    // is killed below.
    if (::waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid) break;
    if (!killed_for_time && !killed_for_output && seconds_since(start) >= limits_.wall_seconds) {
      killed_for_time = true;
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
    }
  }
  ::kill(-pid, SIGKILL);  // whatever it left behind in its group (daemons, without a PID namespace)
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.seconds = seconds_since(start);
  if (!killed_for_output) drain();
  ::close(out_pipe[0]);
  char err_buf[256];
  ssize_t err_n = ::read(err_pipe[0], err_buf, sizeof err_buf);
  ::close(err_pipe[0]);
  if (err_n > 0) fail("sandbox", "setting up the child process: {}", std::string(err_buf, err_n));

  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  if (killed_for_output) result.status = SandboxStatus::OutputLimit;
  else if (killed_for_time || result.signal == SIGXCPU) result.status = SandboxStatus::TimedOut;
  else if (result.exit_code == 0) result.status = SandboxStatus::Passed;
  else result.status = SandboxStatus::Failed;
  return result;
}

std::string humaneval_program(const std::string& prompt, const std::string& completion, const std::string& test,
                              const std::string& entry_point) {
  return prompt + completion + "\n" + test + "\n" + "check(" + entry_point + ")";
}

double pass_at_k(int n, int c, int k) {
  if (n <= 0 || k <= 0 || c < 0 || c > n) fail("pass@k", "needs 0 <= c <= n and k >= 1 (n={}, c={}, k={})", n, c, k);
  if (n - c < k) return 1.0;
  double prod = 1.0;
  for (int i = n - c + 1; i <= n; ++i) prod *= 1.0 - static_cast<double>(k) / i;
  return 1.0 - prod;
}

}  // namespace billion::eval
