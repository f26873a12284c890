#!/usr/bin/env python3
"""Peer side of bench/bench_tokenizer: encodes the same texts with Hugging Face `tokenizers`
(tokenizer.json) or `tiktoken` (rank files), single-threaded, and prints one JSON line per
tokenizer: {"name", "library", "bytes", "tokens", "seconds"}.

Usage: bench_tokenizer_peer.py TEXTS_FILE NAME=KIND:PATH ...
TEXTS_FILE holds the texts as JSON lines; KIND is hf, tiktoken-llama3 or tiktoken-arcade.
Called by bench_tokenizer with --python; the numbers are only meaningful in that same run."""
import json
import os
import sys
import time
import unicodedata

os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"

sys.path.insert(0, os.path.dirname(__file__))
from make_tokenizer_refs import ARCADE_PATTERN, ARCADE_SPECIALS, LLAMA3_PATTERN  # noqa: E402


def load(kind, path):
    if kind == "hf":
        import tokenizers
        return "tokenizers " + tokenizers.__version__, tokenizers.Tokenizer.from_file(path), None
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe
    ranks = load_tiktoken_bpe(path)
    if kind == "tiktoken-llama3":
        with open(os.path.join(os.path.dirname(path), "tokenizer_config.json"), encoding="utf-8") as f:
            specials = {v["content"]: int(k) for k, v in json.load(f)["added_tokens_decoder"].items()}
        enc = tiktoken.Encoding("llama3", pat_str=LLAMA3_PATTERN, mergeable_ranks=ranks, special_tokens=specials)
        return "tiktoken " + tiktoken.__version__, enc, None
    specials = {s: 100257 + i for i, s in enumerate(ARCADE_SPECIALS)}
    enc = tiktoken.Encoding("arcade100k", pat_str=ARCADE_PATTERN, mergeable_ranks=ranks, special_tokens=specials)
    return "tiktoken " + tiktoken.__version__, enc, "NFC"


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        texts = [json.loads(line) for line in f]
    total_bytes = sum(len(t.encode("utf-8")) for t in texts)
    for spec in sys.argv[2:]:
        name, rest = spec.split("=", 1)
        kind, path = rest.split(":", 1)
        library, tok, normalise = load(kind, path)
        best = None
        for _ in range(3):  # best of three, as the C++ side does
            start = time.perf_counter()
            tokens = 0
            if kind == "hf":
                for t in texts:
                    tokens += len(tok.encode(t, add_special_tokens=False).ids)
            else:
                for t in texts:
                    if normalise:
                        t = unicodedata.normalize(normalise, t)
                    tokens += len(tok.encode_ordinary(t))
            elapsed = time.perf_counter() - start
            best = elapsed if best is None else min(best, elapsed)
        print(json.dumps({"name": name, "library": library, "bytes": total_bytes, "tokens": tokens, "seconds": best}), flush=True)


if __name__ == "__main__":
    main()
