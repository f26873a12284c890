#!/usr/bin/env python3
"""Writes the tokenizer golden files in tests/fixtures/tokenizer/ from independent references.

Why: our C++ tokenizers must give exactly the ids the model was trained with. The references are
the libraries the models ship with: Hugging Face `tokenizers` for tokenizer.json, `sentencepiece`
for SentencePiece tokenizer.model files, and `tiktoken` for tiktoken rank files (Llama 3.2's
tokenizer.model, StableLM-2's arcade100k.tiktoken). CI never runs this script; its outputs are
committed. Rerun it (see tools/README.md, "Reference environment") after changing the corpus.

The corpus is built from /work/shared at run time because MMLU and HumanEval text must not be
copied into the repository; tests/tokenizer_corpus.h rebuilds the same strings in the same order,
and every expected line starts with the FNV-1a 64 hash of its string, so any drift between the
two builders is reported as such instead of as a tokenizer bug.

Corpus order (keep in sync with tests/tokenizer_corpus.h):
  1. tests/fixtures/tokenizer/edge_cases.json, in file order;
  2. for each subject in MMLU_SUBJECTS, each row of data/mmlu/test/<subject>_test.csv: the
     question, then the question with its choices "Q\nA. a\nB. b\nC. c\nD. d\nAnswer:";
  3. for each HumanEval record in file order: its prompt, then its canonical_solution.

Outputs:
  <name>.ids.gz   one line per corpus string: "<fnv1a64 hex> id id ...", or "<hash> -" when the
                  string is not valid UTF-8 (no str-based reference exists). Encoded WITHOUT
                  BOS/EOS; header lines start with '#'.
  special_cases.json  a few strings encoded with the tokenizer's defaults (BOS/EOS as configured)
                  and in "plain" mode (no BOS/EOS, special-token text treated as ordinary text).
"""
import argparse
import csv
import gzip
import io
import json
import os
import sys
import unicodedata

import sentencepiece
import tiktoken
import tokenizers
from tiktoken.load import load_tiktoken_bpe

MMLU_SUBJECTS = ["anatomy", "high_school_physics", "high_school_us_history", "marketing",
                 "world_religions"]

# Llama 3 pre-tokenizer pattern (meta-llama/llama-models, models/llama3/tokenizer.py).
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# Arcade100k (StableLM-2): cl100k ranks, but digits split one at a time (models/README.md).
ARCADE_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
ARCADE_SPECIALS = (["<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
                    "<|fim_pad|>", "<gh_stars>", "<filename>", "<issue_start>", "<issue_comment>",
                    "<issue_closed>", "<jupyter_start>", "<jupyter_text>", "<jupyter_code>",
                    "<jupyter_output>", "<empty_output>", "<commit_before>", "<commit_msg>",
                    "<commit_after>", "<reponame>", "<|endofprompt|>", "<|im_start|>",
                    "<|im_end|>", "<|pause|>"] + [f"<|reg{i}|>" for i in range(8)] +
                   ["<|extra0|>"])

# (output name, model folder, reference kind). llama2-7b-chat has byte-identical tokenizer.json
# and tokenizer.model to tinyllama (checked below), so it gets no files of its own: the C++ test
# loads the llama2-7b-chat folder too and compares it with the tinyllama files.
TOKENIZERS = [
    ("smollm2-135m.hf", "smollm2-135m", "hf"),
    ("pythia-1b.hf", "pythia-1b", "hf"),
    ("tinyllama.hf", "tinyllama", "hf"),
    ("tinyllama.spm", "tinyllama", "spm"),
    ("llama3.2-1b.tiktoken", "llama3.2-1b", "tiktoken-llama3"),
    ("stablelm.tiktoken", "stablelm", "tiktoken-arcade"),
]

# Strings for special_cases.json: BOS/EOS handling and special-token text.
SPECIAL_CASE_TEXTS = [
    "Hello world",
    " Hello world",
    "",
    "<|im_start|>user\nHi<|im_end|>\n",
    "<s>[INST] Hi [/INST]",
    "</s>",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "a<|endoftext|>b",
    "<unk>",
]


def fnv1a64(data: bytes) -> str:
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return f"{h:016x}"


def build_corpus(shared, fixtures):
    """Returns [(name, bytes)] in the documented order."""
    corpus = []
    with open(os.path.join(fixtures, "tokenizer", "edge_cases.json"), encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    for case in cases:
        if "text" in case:
            data = case["text"].encode("utf-8")
        elif "repeat" in case:
            data = (case["repeat"] * case["count"]).encode("utf-8")
        else:
            data = bytes.fromhex(case["bytes_hex"])
        corpus.append(("edge/" + case["name"], data))
    for subject in MMLU_SUBJECTS:
        path = os.path.join(shared, "data", "mmlu", "test", f"{subject}_test.csv")
        # newline="" keeps quoted line breaks as written; strict=True rejects what RFC 4180 does.
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f, strict=True))
        for i, row in enumerate(rows):
            if len(row) != 6:
                sys.exit(f"{path}: row {i + 1} has {len(row)} fields, expected 6")
            q, a, b, c, d, _ = row
            corpus.append((f"mmlu/{subject}/{i}/question", q.encode("utf-8")))
            formatted = f"{q}\nA. {a}\nB. {b}\nC. {c}\nD. {d}\nAnswer:"
            corpus.append((f"mmlu/{subject}/{i}/formatted", formatted.encode("utf-8")))
    with gzip.open(os.path.join(shared, "data", "humaneval", "HumanEval.jsonl.gz"), "rt",
                   encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            corpus.append((rec["task_id"] + "/prompt", rec["prompt"].encode("utf-8")))
            corpus.append((rec["task_id"] + "/canonical_solution",
                           rec["canonical_solution"].encode("utf-8")))
    return corpus


class Reference:
    """One reference tokenizer: encode(text, add_special, parse_special) -> ids."""

    def __init__(self, folder, kind):
        self.kind = kind
        self.folder = folder
        if kind == "hf":
            self.source = "tokenizer.json"
            self.version = f"tokenizers=={tokenizers.__version__}"
            self.tok = tokenizers.Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        elif kind == "spm":
            self.source = "tokenizer.model"
            self.version = f"sentencepiece=={sentencepiece.__version__}"
            self.sp = sentencepiece.SentencePieceProcessor(
                model_file=os.path.join(folder, "tokenizer.model"))
        else:
            self.version = f"tiktoken=={tiktoken.__version__}"
            if kind == "tiktoken-llama3":
                self.source = "tokenizer.model"
                ranks = load_tiktoken_bpe(os.path.join(folder, "tokenizer.model"))
                with open(os.path.join(folder, "tokenizer_config.json"), encoding="utf-8") as f:
                    added = json.load(f)["added_tokens_decoder"]
                specials = {v["content"]: int(k) for k, v in added.items()}
                self.enc = tiktoken.Encoding("llama3", pat_str=LLAMA3_PATTERN,
                                             mergeable_ranks=ranks, special_tokens=specials)
                # The real Llama-3.2 tokenizer.json (not available here) prepends
                # <|begin_of_text|> through its TemplateProcessing post-processor.
                self.bos = [specials["<|begin_of_text|>"]]
            else:
                self.source = "arcade100k.tiktoken"
                ranks = load_tiktoken_bpe(os.path.join(folder, "arcade100k.tiktoken"))
                specials = {s: 100257 + i for i, s in enumerate(ARCADE_SPECIALS)}
                self.enc = tiktoken.Encoding("arcade100k", pat_str=ARCADE_PATTERN,
                                             mergeable_ranks=ranks, special_tokens=specials)
                self.bos = []  # Arcade100kTokenizer adds no BOS/EOS (unverified, see README)

    # SentencePiece has no notion of special-token text, so its ids are always "plain" on that
    # axis; the C++ test encodes with parse_special=false for these files.
    def parses_special_by_default(self):
        return self.kind != "spm"

    def encode_many(self, texts, add_special, parse_special):
        if self.kind == "hf":
            self.tok.encode_special_tokens = not parse_special
            return [e.ids for e in self.tok.encode_batch(texts, add_special_tokens=add_special)]
        if self.kind == "spm":
            if parse_special:
                raise ValueError("sentencepiece cannot parse special-token text")
            return self.sp.encode(texts, add_bos=add_special)
        out = []
        for t in texts:
            if self.kind == "tiktoken-arcade":
                t = unicodedata.normalize("NFC", t)
            ids = (self.enc.encode(t, allowed_special="all") if parse_special
                   else self.enc.encode_ordinary(t))
            out.append((self.bos if add_special else []) + ids)
        return out


def write_ids_file(path, header, corpus, ref):
    valid = [(i, data.decode("utf-8")) for i, (_, data) in enumerate(corpus)
             if is_utf8(data)]
    parse_special = ref.parses_special_by_default()
    ids = ref.encode_many([t for _, t in valid], add_special=False, parse_special=parse_special)
    by_index = {i: row for (i, _), row in zip(valid, ids)}
    buf = io.StringIO()
    for line in header:
        buf.write(f"# {line}\n")
    for i, (_, data) in enumerate(corpus):
        row = by_index.get(i)
        buf.write(fnv1a64(data) + (" " + " ".join(map(str, row)) if row else
                                   (" -" if row is None else "")) + "\n")
    # mtime=0 and no file name in the header: rerunning gives identical bytes.
    with open(path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
            gz.write(buf.getvalue().encode("utf-8"))


def is_utf8(data):
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=os.path.join(root, "..", "shared"))
    ap.add_argument("--out", default=os.path.join(root, "tests", "fixtures", "tokenizer"))
    args = ap.parse_args()
    fixtures = os.path.join(root, "tests", "fixtures")
    for f in ("tokenizer.json", "tokenizer.model"):
        a, b = (open(os.path.join(args.shared, "models", m, f), "rb").read()
                for m in ("tinyllama", "llama2-7b-chat"))
        assert a == b, f"tinyllama and llama2-7b-chat {f} differ: give llama2 its own files"
    corpus = build_corpus(args.shared, fixtures)
    names = [n for n, _ in corpus]
    assert len(set(names)) == len(names), "corpus names must be unique"
    print(f"corpus: {len(corpus)} strings, {sum(len(d) for _, d in corpus)} bytes")

    special = {"about": "Ids for a few strings per tokenizer and encode mode; written by "
                        "tools/make_tokenizer_refs.py. 'defaults' = BOS/EOS as the tokenizer is "
                        "configured; 'plain' = no BOS/EOS and special-token text encoded as "
                        "ordinary text.",
               "texts": SPECIAL_CASE_TEXTS, "tokenizers": {}}
    for name, model, kind in TOKENIZERS:
        folder = os.path.join(args.shared, "models", model)
        ref = Reference(folder, kind)
        header = [f"tokenizer={name} folder=models/{model} source={ref.source} "
                  f"reference={ref.version}",
                  f"add_special=0 parse_special={int(ref.parses_special_by_default())} "
                  f"corpus_strings={len(corpus)}",
                  "line: <fnv1a64 of the string's bytes> ids...; '-' = invalid UTF-8, no reference"]
        write_ids_file(os.path.join(args.out, f"{name}.ids.gz"), header, corpus, ref)
        parse_default = ref.parses_special_by_default()
        special["tokenizers"][name] = {
            "defaults": {"add_special": True, "parse_special": parse_default,
                         "ids": ref.encode_many(SPECIAL_CASE_TEXTS, True, parse_default)},
            "plain": {"add_special": False, "parse_special": False,
                      "ids": ref.encode_many(SPECIAL_CASE_TEXTS, False, False)},
        }
        print(f"wrote {name}.ids.gz ({ref.version})")
        if kind == "hf":
            cross_check_transformers(folder, special["tokenizers"][name]["defaults"]["ids"])
    with open(os.path.join(args.out, "special_cases.json"), "w", encoding="utf-8") as f:
        f.write(format_special(special))


def cross_check_transformers(folder, ids):
    """Warns when transformers' AutoTokenizer (what users get) disagrees with tokenizer.json."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(folder)
    for text, expected in zip(SPECIAL_CASE_TEXTS, ids):
        got = tok.encode(text)
        if got != expected:
            print(f"  WARNING transformers {type(tok).__name__} differs on {text!r}: "
                  f"{got} vs {expected}")


def format_special(special):
    """JSON with one id list per line, so a diff shows which string changed."""
    d = lambda v: json.dumps(v, ensure_ascii=False)
    lines = ["{", f' "about": {d(special["about"])},', ' "texts": [']
    lines += [f"  {d(t)}," for t in special["texts"]]
    lines[-1] = lines[-1].rstrip(",")
    lines += [" ],", ' "tokenizers": {']
    names = list(special["tokenizers"])
    for n, name in enumerate(names):
        lines.append(f"  {d(name)}: {{")
        modes = special["tokenizers"][name]
        for m, (mode, v) in enumerate(modes.items()):
            lines.append(f'   {d(mode)}: {{"add_special": {d(v["add_special"])}, '
                         f'"parse_special": {d(v["parse_special"])}, "ids": [')
            lines += [f"    {d(row)}," for row in v["ids"]]
            lines[-1] = lines[-1].rstrip(",")
            lines.append("   ]}" + ("," if m + 1 < len(modes) else ""))
        lines.append("  }" + ("," if n + 1 < len(names) else ""))
    lines += [" }", "}"]
    json.loads("\n".join(lines))  # must stay valid JSON
    return "\n".join(lines) + "\n"

if __name__ == "__main__":
    main()
