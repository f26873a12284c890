// The HumanEval sandbox (src/eval/sandbox.h): every canonical solution passes, deliberately
// wrong solutions fail, ten hostile programs each fail within their limit while this process
// stays healthy, and pass@k matches the unbiased estimator's known values.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "eval/humaneval.h"
#include "eval/sandbox.h"

using namespace billion;
using namespace billion::eval;

namespace {

const std::string kHumanEval = std::string(BILLION_SHARED_DIR) + "/data/humaneval/HumanEval.jsonl.gz";

// Processes anywhere on the host whose command line contains `marker`.
int processes_with(const std::string& marker) {
  int found = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(in)), {});
    if (cmdline.find(marker) != std::string::npos) ++found;
  }
  return found;
}

// A hostile program must end within its wall limit plus scheduling slack (2 shared cores).
void expect_contained(const SandboxResult& r, const Sandbox& sandbox) {
  EXPECT_FALSE(r.passed()) << r.output;
  EXPECT_LT(r.seconds, sandbox.limits().wall_seconds + 2.0) << r.summary();
}

TEST(PassAtK, KnownValues) {
  EXPECT_DOUBLE_EQ(pass_at_k(10, 0, 1), 0.0);
  EXPECT_DOUBLE_EQ(pass_at_k(10, 10, 1), 1.0);
  EXPECT_NEAR(pass_at_k(10, 3, 1), 0.3, 1e-12);
  EXPECT_NEAR(pass_at_k(10, 3, 5), 1.0 - 21.0 / 252.0, 1e-12);  // 1 - C(7,5)/C(10,5)
  EXPECT_NEAR(pass_at_k(200, 17, 10), 0.5974489, 1e-6);        // 1 - C(183,10)/C(200,10)
  EXPECT_DOUBLE_EQ(pass_at_k(5, 3, 3), 1.0);                    // n - c < k
  EXPECT_THROW(pass_at_k(3, 4, 1), Error);
}

TEST(Sandbox, MissingPythonIsAClearError) {
  try {
    Sandbox sandbox({}, "/nonexistent/python3");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no Python interpreter"), std::string::npos) << e.what();
  }
  try {
    Sandbox sandbox({}, "python3-that-does-not-exist");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("PATH"), std::string::npos) << e.what();
  }
}

TEST(Sandbox, ExitStatusOutputAndWorkingDirectory) {
  Sandbox sandbox;
  auto ok = sandbox.run("import os\nopen('scratch.txt', 'w').write('x')\nprint('hello', os.getcwd() == os.environ['HOME'])\n");
  EXPECT_TRUE(ok.passed()) << ok.output;
  EXPECT_EQ(ok.output, "hello True\n");
  auto bad = sandbox.run("def f():\n    return 1\nassert f() == 2\n");
  EXPECT_EQ(bad.status, SandboxStatus::Failed);
  EXPECT_EQ(bad.summary(), "failed: AssertionError");
}

TEST(Sandbox, EveryCanonicalSolutionPasses) {
  auto problems = load_humaneval(kHumanEval);
  ASSERT_EQ(problems.size(), 164u);
  std::vector<std::string> programs;
  for (const auto& p : problems) programs.push_back(humaneval_program(p.prompt, p.canonical_solution, p.test, p.entry_point));
  // A generous wall limit: these check verdicts, not timing, on a machine that may be busy.
  SandboxLimits limits;
  limits.wall_seconds = 15;
  Sandbox sandbox(limits);
  auto results = run_programs(sandbox, programs, 2);
  int passed = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    EXPECT_TRUE(results[i].passed()) << problems[i].task_id << ": " << results[i].summary() << " after " << results[i].seconds
                                     << " s: " << results[i].output;
    passed += results[i].passed();
  }
  EXPECT_EQ(passed, 164);
}

TEST(Sandbox, WrongSolutionsFail) {
  auto problems = load_humaneval(kHumanEval);
  std::vector<std::string> programs;
  // Two kinds of wrong: a constant answer, and the canonical solution with its first return
  // value replaced (plausible code that computes the wrong thing).
  for (int i = 0; i < 20; ++i) {
    const auto& p = problems[i];
    std::string wrong = i % 2 == 0 ? "    return None\n" : p.canonical_solution;
    if (i % 2 == 1) {
      size_t at = wrong.rfind("return ");
      ASSERT_NE(at, std::string::npos) << p.task_id;
      size_t eol = wrong.find('\n', at);
      wrong.replace(at, eol - at, "return 12345");
    }
    programs.push_back(humaneval_program(p.prompt, wrong, p.test, p.entry_point));
  }
  // A generous wall limit: these check verdicts, not timing, on a machine that may be busy.
  SandboxLimits limits;
  limits.wall_seconds = 15;
  Sandbox sandbox(limits);
  auto results = run_programs(sandbox, programs, 2);
  for (size_t i = 0; i < results.size(); ++i) EXPECT_FALSE(results[i].passed()) << problems[i].task_id;
}

TEST(SandboxHostile, InfiniteLoop) {
  Sandbox sandbox;
  auto r = sandbox.run("while True:\n    pass\n");
  expect_contained(r, sandbox);
  EXPECT_EQ(r.status, SandboxStatus::TimedOut);
}

TEST(SandboxHostile, ForkBomb) {
  const std::string marker = "billion-forkbomb-" + std::to_string(getpid());
  Sandbox sandbox;
  auto r = sandbox.run(
      "import os, sys\n"
      "while True:\n"
      "    try:\n"
      "        if os.fork() == 0:\n"
      "            os.execv(sys.executable, [sys.executable, '-c', 'import os\\nwhile True:\\n  try: os.fork()\\n  except OSError: pass', '" +
      marker + "'])\n"
      "    except OSError:\n"
      "        pass\n");
  expect_contained(r, sandbox);
  EXPECT_EQ(processes_with(marker), 0);
}

TEST(SandboxHostile, MemoryHog) {
  Sandbox sandbox;
  // One huge allocation fails at once under RLIMIT_AS.
  auto r = sandbox.run("big = bytearray(8 << 30)\n");
  expect_contained(r, sandbox);
  EXPECT_NE(r.output.find("MemoryError"), std::string::npos) << r.summary() << " after " << r.seconds << " s: " << r.output;
  // Growing until the limit: zero-filling ~1 GiB may take longer than the wall limit on a busy
  // machine, so either MemoryError or the timeout ends it.
  r = sandbox.run("chunks = []\nwhile True:\n    chunks.append(bytearray(50 << 20))\n");
  expect_contained(r, sandbox);
  EXPECT_TRUE(r.status == SandboxStatus::TimedOut || r.output.find("MemoryError") != std::string::npos) << r.summary();
}

TEST(SandboxHostile, WritesOutsideItsDirectory) {
  const std::string marker = "billion-escape-" + std::to_string(getpid());
  const std::vector<std::string> targets = {"/tmp/../" + marker, "/tmp/" + marker, std::string(BILLION_SOURCE_DIR) + "/" + marker,
                                            "/dev/shm/" + marker};
  std::string program = "escaped = []\n";
  for (const auto& t : targets)
    program += "try:\n    open('" + t + "', 'w').write('x')\n    escaped.append('" + t + "')\nexcept OSError:\n    pass\n";
  program += "assert not escaped, escaped\n";
  Sandbox sandbox;
  auto r = sandbox.run(program);
  EXPECT_TRUE(r.passed()) << "wrote outside its directory: " << r.output;  // the program asserts it could not
  for (const auto& t : targets) {
    EXPECT_FALSE(std::filesystem::exists(t)) << t;
    std::filesystem::remove(t);
  }
}

TEST(SandboxHostile, CannotReadSecretsFromTheEnvironment) {
  const std::string secret = "hf_fake_secret_for_the_sandbox_test_0123456789";
  ::setenv("HF_TOKEN", secret.c_str(), 1);
  ::setenv("OPENAI_API_KEY", secret.c_str(), 1);
  Sandbox sandbox;
  auto r = sandbox.run(
      "import os\n"
      "found = [v for v in os.environ.values() if 'hf_fake_secret' in v]\n"
      "try:\n"
      "    found.append(open('/proc/" + std::to_string(getpid()) + "/environ', 'rb').read().decode('latin1'))\n"
      "except OSError:\n"
      "    pass\n"
      "print(found)\n"
      "assert found\n");
  ::unsetenv("HF_TOKEN");
  ::unsetenv("OPENAI_API_KEY");
  expect_contained(r, sandbox);
  EXPECT_EQ(r.output.find(secret), std::string::npos) << r.output;
}

TEST(SandboxHostile, PrintsGigabytes) {
  Sandbox sandbox;
  auto r = sandbox.run("import sys\nblock = 'x' * 65536\nfor _ in range(50000):\n    sys.stdout.write(block)\n");
  expect_contained(r, sandbox);
  EXPECT_EQ(r.status, SandboxStatus::OutputLimit);
  EXPECT_LE(r.output.size(), sandbox.limits().kept_output_bytes);
  EXPECT_LE(r.output_bytes, sandbox.limits().max_output_bytes + (1 << 20));
}

TEST(SandboxHostile, SleepsIgnoringSigterm) {
  Sandbox sandbox;
  auto r = sandbox.run("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(1000)\n");
  expect_contained(r, sandbox);
  EXPECT_EQ(r.status, SandboxStatus::TimedOut);
}

TEST(SandboxHostile, DaemonChildIsKilled) {
  const std::string marker = "billion-daemon-" + std::to_string(getpid());
  Sandbox sandbox;
  // Double fork and a new session: it leaves the process group, so only the PID namespace
  // (or, without one, nothing) stops it.
  auto r = sandbox.run(
      "import os, sys\n"
      "if os.fork() == 0:\n"
      "    os.setsid()\n"
      "    if os.fork() == 0:\n"
      "        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(60)', '" + marker + "'])\n"
      "    os._exit(0)\n"
      "import time\n"
      "time.sleep(0.5)\n"
      "sys.exit(1)\n");
  expect_contained(r, sandbox);
  usleep(200 * 1000);
  if (Sandbox::isolation().pid_namespace) EXPECT_EQ(processes_with(marker), 0);
  else ADD_FAILURE() << "no PID namespace here: a daemon that calls setsid() survives the sandbox";
}

TEST(SandboxHostile, NoNetwork) {
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  int port = ntohs(addr.sin_port);
  Sandbox sandbox;
  auto r = sandbox.run("import socket\ns = socket.create_connection(('127.0.0.1', " + std::to_string(port) +
                       "), timeout=1)\nprint('connected')\n");
  int accepted = ::accept(listener, nullptr, nullptr);
  ::close(listener);
  if (accepted >= 0) ::close(accepted);
  ASSERT_TRUE(Sandbox::isolation().network_namespace) << "the kernel refused a network namespace here";
  expect_contained(r, sandbox);
  EXPECT_LT(accepted, 0) << "the sandboxed program reached a socket on the host";
}

TEST(SandboxHostile, KillingTheParentFails) {
  Sandbox sandbox;
  auto r = sandbox.run("import os, signal\nos.kill(" + std::to_string(getpid()) +
                       ", signal.SIGKILL)\nos.kill(os.getppid(), signal.SIGKILL)\nos.killpg(1, signal.SIGKILL)\n");
  expect_contained(r, sandbox);
  // Still alive, and the sandbox still works.
  EXPECT_TRUE(sandbox.run("print(1)\n").passed());
}

}  // namespace
