// `billion chat`: a conversation with one model, or with two side by side (--compare A B), in a
// terminal (libedit line editing and history, Ctrl-C stops a reply, Ctrl-D exits) or scripted
// through a pipe (one user message per line, plain replies on stdout, statistics on stderr).
// The conversation state and KV cache reuse live in generate/chat_session.h; this file is the
// front end: input, commands, streaming output, statistics and the two-column view.
#include <editline/readline.h>
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "cli/command.h"
#include "cli/common_options.h"
#include "cli/terminal.h"
#include "core/error.h"
#include "generate/chat_session.h"
#include "train/lora.h"

namespace {

using namespace billion;
using Clock = std::chrono::steady_clock;

// Below this many columns the two replies are printed one after the other.
constexpr int kMinSideBySideColumns = 80;

std::atomic<bool> g_cancel{false};
void on_sigint(int) { g_cancel.store(true); }

struct ChatOptions {
  std::string model, system, lora;
  std::vector<std::string> compare;
  int max_tokens = 512;
  cli::SamplingFlags sampling;
  cli::ModelFlags model_flags;
};

struct Participant {
  std::string label;  // "A: name" in compare mode (the column header), else the name
  std::string tag;    // "A" or "B" in compare mode (statistics lines), else empty
  std::unique_ptr<Model> model;
  std::unique_ptr<ChatSession> session;
};

std::string model_label(const std::string& name) {
  std::string stem = std::filesystem::path(name).filename().string();
  if (stem.size() > 5 && stem.ends_with(".gguf")) stem.resize(stem.size() - 5);
  return stem.empty() ? name : stem;
}

// One line after each reply (stderr): what it cost and how full the context is.
std::string stats_line(const std::string& label, const ChatTurn& t) {
  const auto& r = t.result;
  return fmt::format("[{}prompt {} tokens ({} evaluated) | generated {} tokens | first token {:.3f} s | {:.1f} tok/s | context {}/{}{}]",
                     label.empty() ? "" : label + ": ", r.prompt_tokens, r.evaluated_prompt_tokens, r.tokens.size(),
                     r.time_to_first_token, r.decode_tokens_per_second(), t.context_used, t.context_capacity,
                     r.stop_reason == "eos" ? "" : " | stop: " + r.stop_reason);
}

std::string dropped_notice(const std::string& label, int dropped) {
  return fmt::format("[{}context full: dropped the {} oldest message{} (the system prompt is kept)]",
                     label.empty() ? "" : label + ": ", dropped, dropped == 1 ? "" : "s");
}

// Lets two generation threads take turns token by token, so their columns grow together and
// only one of them uses the CPU (and the shared thread pool) at a time.
class Baton {
 public:
  void wait_for(int who) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return holder_ == who; });
  }
  void pass(int from) {
    std::lock_guard lock(mutex_);
    if (!done_[1 - from]) holder_ = 1 - from;
    changed_.notify_all();
  }
  void finish(int who) {
    std::lock_guard lock(mutex_);
    done_[who] = true;
    holder_ = 1 - who;
    changed_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int holder_ = 0;
  bool done_[2] = {false, false};
};

class ChatApp {
 public:
  explicit ChatApp(const ChatOptions& o) : o_(o), interactive_(::isatty(STDIN_FILENO) != 0), pool_(o.model_flags.threads) {}

  void load() {
    std::vector<std::string> names = o_.compare.empty() ? std::vector<std::string>{o_.model} : o_.compare;
    for (size_t i = 0; i < names.size(); ++i) {
      Participant p;
      p.tag = names.size() == 1 ? "" : std::string(1, char('A' + i));
      p.label = p.tag.empty() ? model_label(names[i]) : p.tag + ": " + model_label(names[i]);
      p.model = cli::load_model(names[i], o_.model_flags);
      // With --compare the adapter goes on the second model: `--compare M M --lora X` puts the
      // base model beside its fine-tuned self.
      if (!o_.lora.empty() && i + 1 == names.size()) {
        train::attach_peft_adapter(*p.model, o_.lora);
        p.label += " + LoRA";
      }
      p.session = std::make_unique<ChatSession>(*p.model, o_.model_flags.capacity(*p.model), o_.model_flags.kv(), names[i]);
      p.session->set_system(o_.system);
      people_.push_back(std::move(p));
    }
  }

  void run() {
    struct sigaction action {};
    action.sa_handler = on_sigint;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGINT, &action, nullptr);  // no SA_RESTART: a blocked read returns at Ctrl-C
    if (interactive_) {
      for (const auto& p : people_)
        std::printf("%s: context %d tokens\n", p.label.c_str(), p.session->context_capacity());
      std::printf("Type a message, or /help for commands. Ctrl-C stops a reply, Ctrl-D exits.\n");
    }
    std::string line;
    while (read_line(line)) {
      if (line.empty()) continue;
      if (line[0] == '/' && line.rfind("//", 0) != 0) {
        if (!command(line)) break;
        continue;
      }
      if (line.rfind("//", 0) == 0) line.erase(0, 1);  // "//text" sends "/text"
      try {
        people_.size() == 1 ? answer_one(line) : answer_two(line);
      } catch (const Error& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "error: %s\n", e.what());
      }
    }
  }

 private:
  bool read_line(std::string& line) {
    if (!interactive_) {
      if (!std::getline(std::cin, line)) return false;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return true;
    }
    for (;;) {
      g_cancel = false;
      char* raw = ::readline("> ");
      if (raw) {
        line = raw;
        std::free(raw);
        if (!line.empty()) ::add_history(line.c_str());
        return true;
      }
      if (!g_cancel) {  // Ctrl-D
        std::printf("\n");
        return false;
      }
      std::printf("\n(Ctrl-D or /quit exits)\n");  // Ctrl-C at the prompt clears the line
    }
  }

  GenerationOptions generation_options() const {
    GenerationOptions options;
    options.max_new_tokens = o_.max_tokens;
    options.sampling = o_.sampling.options();
    options.cancel = &g_cancel;
    return options;
  }

  void answer_one(const std::string& message) {
    Participant& p = people_[0];
    g_cancel = false;
    auto on_text = [](const std::string& text) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    };
    auto on_dropped = [](int dropped) { std::fprintf(stderr, "%s\n", dropped_notice("", dropped).c_str()); };
    ChatTurn turn = p.session->reply(message, generation_options(), pool_, on_text, on_dropped);
    std::printf(turn.result.stop_reason == "cancelled" ? " [stopped]\n" : "\n");
    std::fflush(stdout);
    std::fprintf(stderr, "%s\n", stats_line("", turn).c_str());
  }

  void answer_two(const std::string& message) {
    g_cancel = false;
    cli::TerminalSize size = cli::terminal_size(STDOUT_FILENO);
    std::optional<ChatTurn> turns[2];
    std::vector<std::string> notices;
    if (size.columns >= kMinSideBySideColumns) {
      cli::SideBySide view(stdout, size.columns, size.rows, people_[0].label, people_[1].label);
      view.start();
      Baton baton;
      std::exception_ptr errors[2];
      double waited[2] = {0, 0};
      std::mutex notices_mutex;
      auto worker = [&](int i) {
        baton.wait_for(i);
        try {
          auto on_text = [&, i](const std::string& text) {
            view.append(i, text);
            auto t0 = Clock::now();
            baton.pass(i);
            baton.wait_for(i);
            waited[i] += std::chrono::duration<double>(Clock::now() - t0).count();
          };
          auto on_dropped = [&, i](int dropped) {
            std::lock_guard lock(notices_mutex);
            notices.push_back(dropped_notice(people_[i].tag, dropped));
          };
          turns[i] = people_[i].session->reply(message, generation_options(), pool_, on_text, on_dropped);
          // The time spent waiting for the other model is not this model's decoding time.
          turns[i]->result.decode_seconds = std::max(0.0, turns[i]->result.decode_seconds - waited[i]);
        } catch (...) {
          errors[i] = std::current_exception();
        }
        baton.finish(i);
      };
      std::thread second(worker, 1);
      worker(0);
      second.join();
      view.finish();
      for (int i = 0; i < 2; ++i)
        if (errors[i]) try {
            std::rethrow_exception(errors[i]);
          } catch (const std::exception& e) {
            std::fprintf(stderr, "error: %s: %s\n", people_[i].label.c_str(), e.what());
          }
      if (g_cancel) std::printf("[stopped]\n");
    } else {
      for (int i = 0; i < 2; ++i) {
        std::printf("── %s ──\n", people_[i].label.c_str());
        std::fflush(stdout);
        auto on_text = [](const std::string& text) {
          std::fwrite(text.data(), 1, text.size(), stdout);
          std::fflush(stdout);
        };
        auto on_dropped = [&](int dropped) { notices.push_back(dropped_notice(people_[i].tag, dropped)); };
        try {
          turns[i] = people_[i].session->reply(message, generation_options(), pool_, on_text, on_dropped);
          std::printf(turns[i]->result.stop_reason == "cancelled" ? " [stopped]\n" : "\n");
        } catch (const Error& e) {
          std::fflush(stdout);
          std::fprintf(stderr, "error: %s: %s\n", people_[i].label.c_str(), e.what());
        }
      }
    }
    std::fflush(stdout);
    for (const auto& n : notices) std::fprintf(stderr, "%s\n", n.c_str());
    for (int i = 0; i < 2; ++i)
      if (turns[i]) std::fprintf(stderr, "%s\n", stats_line(people_[i].tag, *turns[i]).c_str());
    if (turns[0] && turns[1]) std::fprintf(stderr, "%s\n", faster_summary(*turns[0], *turns[1]).c_str());
  }

  std::string faster_summary(const ChatTurn& a, const ChatTurn& b) const {
    double ra = a.result.decode_tokens_per_second(), rb = b.result.decode_tokens_per_second();
    if (ra <= 0 || rb <= 0) return "[speed: too few tokens to compare]";
    int fast = ra >= rb ? 0 : 1;
    double hi = std::max(ra, rb), lo = std::min(ra, rb);
    if (hi / lo < 1.03) return fmt::format("[about equally fast: A {:.1f} tok/s, B {:.1f} tok/s]", ra, rb);
    const ChatTurn& f = fast == 0 ? a : b;
    const ChatTurn& s = fast == 0 ? b : a;
    return fmt::format("[faster: {} ({:.1f} vs {:.1f} tok/s, {:.2f}x; first token {:.3f} s vs {:.3f} s)]", people_[fast].label, hi,
                       lo, hi / lo, f.result.time_to_first_token, s.result.time_to_first_token);
  }

  // Returns false to end the session.
  bool command(const std::string& line) {
    auto space = line.find(' ');
    std::string name = line.substr(0, space);
    std::string arg = space == std::string::npos ? "" : line.substr(space + 1);
    if (name == "/quit" || name == "/exit") return false;
    if (name == "/help") {
      std::printf(
          "/system TEXT  replace the system prompt (the history is kept and re-evaluated)\n"
          "/system       show the system prompt\n"
          "/reset        forget the conversation (keeps the system prompt)\n"
          "/stats        tokens, timing and context use of the last reply and the session\n"
          "/save FILE    write the conversation as JSON\n"
          "/quit         leave (or Ctrl-D); Ctrl-C stops a reply\n"
          "//text        send a message that starts with '/'\n");
    } else if (name == "/system") {
      if (arg.empty()) {
        std::printf("system prompt: %s\n", people_[0].session->system().empty() ? "(none: the template's default)"
                                                                              : people_[0].session->system().c_str());
      } else {
        for (auto& p : people_) p.session->set_system(arg);
        std::printf("[system prompt set]\n");
      }
    } else if (name == "/reset") {
      for (auto& p : people_) p.session->reset();
      std::printf("[conversation reset]\n");
    } else if (name == "/stats") {
      for (auto& p : people_) print_stats(p);
    } else if (name == "/save") {
      save(arg);
    } else {
      std::printf("unknown command %s; /help lists the commands\n", name.c_str());
    }
    std::fflush(stdout);
    return true;
  }

  void print_stats(const Participant& p) const {
    const ChatSession& s = *p.session;
    std::printf("%s\n  context: %d / %d tokens\n", p.label.c_str(), s.context_used(), s.context_capacity());
    if (const auto& t = s.last_turn()) {
      const auto& r = t->result;
      std::printf("  last reply: prompt %d tokens: evaluated %d new prompt tokens (%d reused from the cache)\n", r.prompt_tokens,
                  r.evaluated_prompt_tokens, r.prompt_tokens - r.evaluated_prompt_tokens);
      std::printf("              generated %zu tokens, first token %.3f s, prefill %.1f tok/s, decode %.1f tok/s, stop: %s\n",
                  r.tokens.size(), r.time_to_first_token, r.prefill_tokens_per_second(), r.decode_tokens_per_second(),
                  r.stop_reason.c_str());
    }
    const auto& n = s.totals();
    std::printf("  session: %d replies, %lld prompt tokens evaluated of %lld, %lld tokens generated, %lld messages dropped\n",
                n.replies, static_cast<long long>(n.evaluated_prompt_tokens), static_cast<long long>(n.prompt_tokens),
                static_cast<long long>(n.generated_tokens), static_cast<long long>(n.dropped_messages));
  }

  void save(const std::string& path) {
    if (path.empty()) {
      std::printf("usage: /save FILE\n");
      return;
    }
    nlohmann::ordered_json j;
    if (people_.size() == 1) {
      j = people_[0].session->to_json();
    } else {
      j = {{"models", nlohmann::ordered_json::array()}};
      for (const auto& p : people_) j["models"].push_back(p.session->to_json());
    }
    std::ofstream out(path);
    out << j.dump(2) << "\n";
    if (!out) {
      std::fprintf(stderr, "error: %s: cannot write the conversation\n", path.c_str());
      return;
    }
    std::printf("[conversation saved to %s]\n", path.c_str());
  }

  const ChatOptions& o_;
  bool interactive_;
  ThreadPool pool_;
  std::vector<Participant> people_;
};

void run(const ChatOptions& o) {
  if (o.model.empty() == o.compare.empty()) throw Error("chat: give either --model MODEL or --compare MODEL_A MODEL_B");
  ChatApp app(o);
  app.load();
  app.run();
}

void setup(CLI::App& app) {
  auto o = std::make_shared<ChatOptions>();
  auto* cmd = app.add_subcommand("chat", "Chat with a model, or with two side by side (--compare)");
  auto* model = cmd->add_option("--model,-m", o->model, "A .gguf file, a model folder, or a model name from the cache");
  cmd->add_option("--compare", o->compare, "Two models that answer every message side by side")->expected(2)->excludes(model);
  cmd->add_option("--system", o->system, "System prompt");
  cmd->add_option("--lora", o->lora, "A PEFT LoRA adapter folder to apply (with --compare: to the second model)");
  cmd->add_option("-n,--max-tokens", o->max_tokens, "Maximum tokens per reply")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  o->sampling.add_to(cmd);
  o->model_flags.add_to(cmd);
  cmd->callback([o] { run(*o); });
}

billion::cli::RegisterCommand registration(35, setup);

}  // namespace
