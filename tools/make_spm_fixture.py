#!/usr/bin/env python3
"""Writes tests/fixtures/spm/expected.json: reference ids for the SentencePiece-style tokenizer.

Why: llama.cpp ships no .inp/.out pair for its only SPM test vocabulary here
(ggml-vocab-baichuan.gguf), and the GGUF path must follow llama.cpp's SPM tokenizer. For plain
text (no special tokens) llama.cpp's SPM tokenizer is SentencePiece's BPE: a dummy-prefix space,
spaces as U+2581, highest-score pair merged first (leftmost on ties), byte fallback. So the
reference here is the `sentencepiece` library itself, run on a ModelProto that this script builds
from the GGUF vocabulary (tokens, scores, token types; identity normalizer, add_dummy_prefix on,
remove_extra_whitespaces off, byte_fallback on), encoding the llama.cpp test inputs
(ggml-vocab-*.gguf.inp, split on "\\n__ggml_vocab_test__\\n") and a few strings of our own.

The same is done with TinyLlama's real tokenizer.model (its sentencepiece output is what
llama.cpp gives for a Llama-2 GGUF), which the C++ test compares with a GGUF it builds in memory
from tokenizer.model. The script also cross-checks sentencepiece against the Hugging Face
`tokenizers` library on tinyllama/tokenizer.json and prints any difference (none expected).

Only ids (and our own strings) are written: the .inp texts stay in ../shared and the C++ test
reads them from there. CI never runs this script; rerun it by hand with the reference env:
  /root/.cache/billion/refenv/bin/python tools/make_spm_fixture.py
"""
import argparse
import json
import os
import struct
import tempfile

import sentencepiece
import tokenizers
from gguf import GGUFReader

SEPARATOR = "\n__ggml_vocab_test__\n"

# Our own strings (not from ../shared): spaces, newlines, scripts, emoji, special-token text.
TEXTS = [
    "Hello world",
    " Hello world",
    "   leading and trailing   ",
    "a  b   c    d",
    "\n\nnewlines\n",
    "tabs\tand\ttabs",
    "北京是中国的首都。",
    "我爱自然语言处理，你呢？",
    "日本語のテキストです",
    "한국어 텍스트",
    "Привет, мир!",
    "emoji 😀🎉 and 👨‍👩‍👧",
    "mixed 中文 and English 123",
    "<s>[INST] Hi [/INST]</s>",
    "<unk><SEP><CLS><p>",
    "▁literal▁blocks▁",
    "\u00a0nbsp\u2009thin",
    "x" * 300,
    "1234567890 3.14159",
    "def f(x):\n    return x * 2\n",
]


def varint(n):
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(number, wire, payload):
    key = varint((number << 3) | wire)
    if wire == 0:
        return key + varint(payload)
    if wire == 5:
        return key + payload
    return key + varint(len(payload)) + payload


def build_model_proto(tokens, scores, types, unk, bos, eos):
    """A SentencePiece ModelProto (BPE, byte fallback, identity normalizer) as bytes."""
    out = bytearray()
    for piece, score, kind in zip(tokens, scores, types):
        sp = (field(1, 2, piece.encode("utf-8")) + field(2, 5, struct.pack("<f", score)) +
              field(3, 0, kind))
        out += field(1, 2, sp)
    trainer = (field(3, 0, 2) +        # model_type = BPE
               field(35, 0, 1) +       # byte_fallback
               field(40, 0, unk) + field(41, 0, bos) + field(42, 0, eos) + field(43, 0, -1))
    out += field(2, 2, trainer)
    normalizer = (field(1, 2, b"identity") + field(3, 0, 1) +  # add_dummy_prefix
                  field(4, 0, 0) +                              # remove_extra_whitespaces off
                  field(5, 0, 1))                               # escape_whitespaces
    out += field(3, 2, normalizer)
    return bytes(out)


def gguf_vocab(path):
    r = GGUFReader(path)

    def arr(key):
        f = r.fields[key]
        return [f.parts[i] for i in f.data]

    def scalar(key, default):
        f = r.fields.get(key)
        return int(f.parts[f.data[0]][0]) if f else default

    model = bytes(r.fields["tokenizer.ggml.model"].parts[r.fields["tokenizer.ggml.model"].data[0]])
    assert model == b"llama", model
    tokens = [bytes(p).decode("utf-8") for p in arr("tokenizer.ggml.tokens")]
    scores = [float(p[0]) for p in arr("tokenizer.ggml.scores")]
    types = [int(p[0]) for p in arr("tokenizer.ggml.token_type")]
    # llama.cpp's add_space_prefix defaults to true for SPM; the key would override it.
    assert "tokenizer.ggml.add_space_prefix" not in r.fields
    return (tokens, scores, types, scalar("tokenizer.ggml.unknown_token_id", 0),
            scalar("tokenizer.ggml.bos_token_id", 1), scalar("tokenizer.ggml.eos_token_id", 2))


def read_inp(path):
    with open(path, encoding="utf-8", newline="") as f:
        parts = f.read().split(SEPARATOR)
    assert parts[-1] == "", "text after the last separator"
    return parts[:-1]


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=os.path.join(root, "..", "shared"))
    ap.add_argument("--out", default=os.path.join(root, "tests", "fixtures", "spm", "expected.json"))
    args = ap.parse_args()
    vocab_dir = os.path.join(args.shared, "tokenizers", "llama.cpp-vocab")
    inp = read_inp(os.path.join(vocab_dir, "ggml-vocab-starcoder.gguf.inp"))

    tokens, scores, types, unk, bos, eos = gguf_vocab(os.path.join(vocab_dir, "ggml-vocab-baichuan.gguf"))
    with tempfile.NamedTemporaryFile(suffix=".model", delete=False) as f:
        f.write(build_model_proto(tokens, scores, types, unk, bos, eos))
        proto_path = f.name
    try:
        baichuan = sentencepiece.SentencePieceProcessor(model_file=proto_path)
    finally:
        os.unlink(proto_path)
    assert baichuan.get_piece_size() == len(tokens)

    tiny = sentencepiece.SentencePieceProcessor(
        model_file=os.path.join(args.shared, "models", "tinyllama", "tokenizer.model"))
    hf = tokenizers.Tokenizer.from_file(os.path.join(args.shared, "models", "tinyllama", "tokenizer.json"))
    hf.encode_special_tokens = True  # special-token text as plain text, like sentencepiece
    differ = 0
    for text in inp + TEXTS:
        a, b = tiny.encode(text), hf.encode(text, add_special_tokens=False).ids
        if a != b:
            differ += 1
            print(f"sentencepiece and tokenizer.json differ on {text!r}: {a} vs {b}")
    print(f"tinyllama: sentencepiece vs tokenizers differ on {differ} of {len(inp) + len(TEXTS)}")

    doc = {
        "about": "Written by tools/make_spm_fixture.py. Ids from sentencepiece=="
                 f"{sentencepiece.__version__}, no BOS/EOS, special-token text as plain text. "
                 "'inp' rows follow ggml-vocab-*.gguf.inp split on the llama.cpp separator "
                 "(texts read from ../shared at test time); 'texts' rows follow 'texts'.",
        "texts": TEXTS,
        "baichuan_gguf": {"inp": baichuan.encode(inp), "texts": baichuan.encode(TEXTS)},
        "tinyllama_model": {"inp": tiny.encode(inp), "texts": tiny.encode(TEXTS)},
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    d = lambda v: json.dumps(v, ensure_ascii=False)
    lines = ["{", f' "about": {d(doc["about"])},', f' "texts": [']
    lines += [f"  {d(t)}," for t in TEXTS]
    lines[-1] = lines[-1].rstrip(",")
    lines.append(" ],")
    for n, name in enumerate(("baichuan_gguf", "tinyllama_model")):
        lines.append(f' "{name}": {{')
        for m, key in enumerate(("inp", "texts")):
            lines.append(f'  "{key}": [')
            lines += [f"   {d(row)}," for row in doc[name][key]]
            lines[-1] = lines[-1].rstrip(",")
            lines.append("  ]" + ("," if m == 0 else ""))
        lines.append(" }" + ("," if n == 0 else ""))
    lines.append("}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == doc
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {args.out}: {len(inp)} inp cases, {len(TEXTS)} texts")


if __name__ == "__main__":
    main()
