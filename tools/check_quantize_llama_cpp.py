#!/usr/bin/env python3
"""Checks that llama.cpp loads and runs the GGUF files `billion quantize` writes (a manual check,
not a CI test: it needs llama-cpp-python). For each case it quantizes with the given billion
binary, loads the output with llama-cpp-python, evaluates a prompt and compares the logits with
llama.cpp's on the source file.

    /root/.cache/billion/refenv/bin/python tools/check_quantize_llama_cpp.py BUILD/billion [SMOLLM2.gguf]
"""
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import llama_cpp

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures" / "engine"


def logits(path, ids):
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, logits_all=True, n_threads=2, verbose=False)
    llm.eval(ids)
    out = np.array(llm.scores[: len(ids)], dtype=np.float32)
    del llm
    return out


def main():
    billion = sys.argv[1]
    smollm2 = sys.argv[2] if len(sys.argv) > 2 else None
    cases = []
    for name in ("llama32", "tinyllama", "pythia", "stablelm", "stablelm_qkln", "stablelm_par"):
        ids = json.loads((FIX / name / "expected.json").read_text())["prompts"][2]
        for t in ("f16", "q8_0", "q4_0", "q4_1"):
            # source for the comparison: llama.cpp on the fixture's F16 GGUF
            cases.append((f"{name} HF folder -> {t}", FIX / name / "f32", t, FIX / name / f"{name}.f16.gguf", ids))
    if smollm2:
        tok = llama_cpp.Llama(model_path=smollm2, vocab_only=True, verbose=False)
        ids = tok.tokenize(b"<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
                           add_bos=False, special=True)
        del tok
        for t in ("q8_0", "q4_0", "f16"):
            cases.append((f"SmolLM2 Q4_1 GGUF -> {t}", pathlib.Path(smollm2), t, pathlib.Path(smollm2), ids))
    with tempfile.TemporaryDirectory() as tmp:
        for label, src, t, ref_path, ids in cases:
            out = pathlib.Path(tmp) / "out.gguf"
            subprocess.run([billion, "quantize", str(src), str(out), "--type", t], check=True, capture_output=True)
            ref = logits(ref_path, ids)
            ours = logits(out, ids)
            d = np.abs(ours - ref).max()
            top = (ours.argmax(-1) == ref.argmax(-1)).mean()
            print(f"| {label} | loads | max|diff| {d:.4f} (max|logit| {np.abs(ref).max():.2f}) | argmax agree {top:.0%} |")


if __name__ == "__main__":
    main()
