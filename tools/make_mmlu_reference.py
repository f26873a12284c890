#!/usr/bin/env python3
"""Independent MMLU reference for billion-llm's scorer (tests/test_mmlu.cpp).

Builds the lm-evaluation-harness MMLU prompts (5-shot from dev, first_n; CONVENTIONS.md §2.3)
in plain Python, evaluates them with llama-cpp-python (llama.cpp) on a GGUF model, and picks the
letter whose token " A".." D" has the largest logit at the last position (the same argmax as the
log-softmax scores). It first checks, per question, that each " X" is one token and that
tokenize(ctx + " X") == tokenize(ctx) + [id], which makes the last-position read exact.
The few-shot header's KV cache is reused between questions of a subject (llama.cpp keeps the
common prefix when n_tokens is moved back), which changes no logits beyond float noise.

Output (committed as tests/fixtures/mmlu/smollm2_reference.json): per subject the chosen
letters as one string, the gold letters, accuracy; the micro accuracy; versions and the
model's sha256.

Usage:
  /root/.cache/billion/refenv/bin/python tools/make_mmlu_reference.py \
      --model ~/.cache/billion/models/SmolLM2-135M-Instruct.Q4_1.gguf \
      --data ../shared/data/mmlu --out tests/fixtures/mmlu/smollm2_reference.json
"""
import argparse
import csv
import ctypes
import hashlib
import json
import os
import sys
import time

import numpy as np
import llama_cpp
from llama_cpp import Llama

SUBJECTS = [
    "abstract_algebra", "anatomy", "college_computer_science", "high_school_biology",
    "high_school_mathematics", "high_school_us_history", "marketing", "philosophy",
    "professional_medicine", "world_religions",
]
LETTERS = "ABCD"


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return [r for r in csv.reader(f) if r]


def question_text(row):
    text = row[0].strip()
    for i, letter in enumerate(LETTERS):
        text += f"\n{letter}. {row[1 + i]}"
    return text + "\nAnswer:"


def header(subject, dev_rows, shots=5):
    h = f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
    for row in dev_rows[:shots]:
        h += question_text(row) + " " + row[5].strip() + "\n\n"
    return h


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, help="the mmlu folder (dev/, test/)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--limit", type=int, default=0, help="questions per subject; 0 = all")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    llm = Llama(model_path=args.model, n_ctx=4096, n_batch=512, n_threads=args.threads, logits_all=False, verbose=False)
    n_vocab = llm.n_vocab()
    letter_ids = []
    for letter in LETTERS:
        ids = llm.tokenize((" " + letter).encode(), add_bos=False, special=False)
        assert len(ids) == 1, f"' {letter}' is {len(ids)} tokens for this tokenizer"
        letter_ids.append(ids[0])

    out = {
        "model_file": os.path.basename(args.model),
        "model_sha256": sha256(args.model),
        "scorer": f"llama-cpp-python {llama_cpp.__version__}, argmax of last-position logits of ' A'..' D'",
        "prompt": "lm-evaluation-harness mmlu, 5-shot first_n from dev, BOS as the GGUF's add_bos",
        "limit_per_subject": args.limit,
        "subjects": {},
    }
    total = correct = 0
    start = time.time()
    for subject in SUBJECTS:
        dev = read_rows(os.path.join(args.data, "dev", f"{subject}_dev.csv"))
        test = read_rows(os.path.join(args.data, "test", f"{subject}_test.csv"))
        if args.limit:
            test = test[: args.limit]
        hdr = header(subject, dev)
        llm.reset()
        chosen, gold = "", ""
        for row in test:
            ctx = hdr + question_text(row)
            toks = llm.tokenize(ctx.encode(), add_bos=True, special=False)
            for letter, lid in zip(LETTERS, letter_ids):
                whole = llm.tokenize((ctx + " " + letter).encode(), add_bos=True, special=False)
                assert whole == toks + [lid], f"{subject}: ' {letter}' merges with the context; score continuations instead"
            cached = llm.input_ids[: llm.n_tokens].tolist()
            common = 0
            while common < min(len(cached), len(toks) - 1) and cached[common] == toks[common]:
                common += 1
            llm.n_tokens = common
            llm.eval(toks[common:])
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(n_vocab,))
            pick = int(np.argmax([logits[i] for i in letter_ids]))
            chosen += LETTERS[pick]
            gold += row[5].strip()
        n_right = sum(a == b for a, b in zip(chosen, gold))
        out["subjects"][subject] = {"n": len(test), "correct": n_right, "accuracy": n_right / len(test), "chosen": chosen, "gold": gold}
        total += len(test)
        correct += n_right
        print(f"{subject}: {n_right}/{len(test)} = {n_right / len(test):.4f}  ({time.time() - start:.0f} s)", file=sys.stderr)
    out["questions"] = total
    out["correct"] = correct
    out["accuracy"] = correct / total
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"micro accuracy {correct}/{total} = {correct / total:.4f}", file=sys.stderr)


if __name__ == "__main__":
    main()
