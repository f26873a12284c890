// `billion tokenize --model MODEL [--no-bos] [--special] [--pieces] TEXT`: the token ids (or
// vocabulary pieces) of TEXT, space-separated on one line. TEXT "-" reads standard input.
#include <iostream>
#include <iterator>
#include <memory>

#include "cli/command.h"
#include "cli/model_path.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace {

struct TokenizeOptions {
  std::string model;
  std::string text;
  bool no_bos = false;
  bool special = false;
  bool pieces = false;
};

void run(const TokenizeOptions& o) {
  auto tokenizer = billion::load_tokenizer(billion::cli::model_path(o.model));
  std::string text = o.text;
  if (text == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    if (std::cin.bad()) throw billion::Error("stdin: read error");
  }
  billion::EncodeOptions options;
  options.add_special = !o.no_bos;
  options.parse_special = o.special;
  const auto ids = tokenizer->encode(text, options);
  std::string line;
  for (size_t k = 0; k < ids.size(); ++k) {
    if (k) line += ' ';
    line += o.pieces ? tokenizer->token_text(ids[k]) : std::to_string(ids[k]);
  }
  std::cout << line << "\n";
}

void setup(CLI::App& app) {
  auto options = std::make_shared<TokenizeOptions>();
  auto* cmd = app.add_subcommand("tokenize", "Print the token ids of a text");
  cmd->add_option("-m,--model", options->model, "A .gguf file, a model folder, a tokenizer file, or a cached model name")
      ->required();
  cmd->add_option("text", options->text, "The text; - reads standard input")->required();
  cmd->add_flag("--no-bos", options->no_bos, "Do not add BOS/EOS even if the tokenizer is configured to");
  cmd->add_flag("--special", options->special, "Turn special-token text such as <|im_start|> into those tokens");
  cmd->add_flag("--pieces", options->pieces, "Print vocabulary pieces instead of ids");
  cmd->callback([options] { run(*options); });
}

billion::cli::RegisterCommand reg(20, setup);

}  // namespace
