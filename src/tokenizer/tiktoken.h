// tiktoken rank files ("<base64 bytes> <rank>" per line): Meta's Llama-3 tokenizer.model,
// OpenAI's cl100k_base/o200k_base and StableLM-2's arcade100k.tiktoken. The ranks become a
// byte-level BPE whose merge rule is tiktoken's (merge the adjacent pair whose concatenation has
// the lowest rank); pattern, normaliser and special tokens come from the encoding's definition,
// with tokenizer_config.json's added_tokens_decoder taking precedence when the folder has one.
#pragma once
#include <memory>
#include <string>

#include "tokenizer/tokenizer.h"

namespace billion {

// True when the file starts like a tiktoken rank file (not a SentencePiece protobuf).
bool is_tiktoken_file(const std::string& path);

// `folder` (may be empty) supplies tokenizer_config.json / generation_config.json. The encoding
// is recognised from the file name: tokenizer.model = Llama-3, *arcade100k* = StableLM-2,
// *cl100k_base*, *o200k_base*; anything else is an Error (its regex would be a guess).
std::unique_ptr<Tokenizer> load_tiktoken(const std::string& path, const std::string& folder);

}  // namespace billion
