// A reader for SentencePiece's tokenizer.model (a serialized `ModelProto` protobuf): the pieces
// with their score and type, and the trainer/normalizer fields our SPM tokenizer needs. The
// protobuf wire format is decoded here by hand (no protobuf dependency); the file is untrusted,
// so every length, varint and field is bounds-checked and any problem is an Error naming the file.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace billion {

struct SentencePieceModel {
  // ModelProto.SentencePiece.Type values.
  enum PieceType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };
  // TrainerSpec.ModelType values.
  enum ModelType : int32_t { kUnigram = 1, kBpe = 2, kWord = 3, kChar = 4 };

  struct Piece {
    std::string piece;
    float score = 0;
    int32_t type = kNormal;
  };
  std::vector<Piece> pieces;

  // TrainerSpec (defaults are the proto's own defaults, used when a field is absent).
  int32_t model_type = kUnigram;
  bool byte_fallback = false;
  bool treat_whitespace_as_suffix = false;
  int32_t unk_id = 0;
  int32_t bos_id = 1;
  int32_t eos_id = 2;
  int32_t pad_id = -1;

  // NormalizerSpec.
  std::string normalizer_name;
  bool has_precompiled_charsmap = false;  // a non-empty normalization table (e.g. nmt_nfkc)
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
};

// Decodes a ModelProto held in memory; `name` (usually the path) prefixes every error message.
// Checks the wire format only; what the tokenizer requires is checked by the SPM loader.
SentencePieceModel parse_sentencepiece_model(std::span<const uint8_t> bytes, const std::string& name);

// Reads and decodes a tokenizer.model file.
SentencePieceModel read_sentencepiece_model(const std::string& path);

}  // namespace billion
