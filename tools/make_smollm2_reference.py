#!/usr/bin/env python3
"""Writes tests/fixtures/engine/smollm2/: references for the real SmolLM2-135M-Instruct Q4_1
GGUF (test_engine_smollm2.cpp).

Run with the reference environment (transformers 5.23.0, llama-cpp-python 0.3.36, gguf 0.19.0):
    BILLION_SMOLLM2_GGUF=~/.cache/billion/models/SmolLM2-135M-Instruct.Q4_1.gguf \\
        /root/.cache/billion/refenv/bin/python tools/make_smollm2_reference.py

Five chat conversations are rendered with the model's chat template (transformers'
apply_chat_template, ../shared/models/smollm2-135m/tokenizer_config.json, generation prompt on)
and tokenized by llama.cpp's tokenizer (special=True, add_bos=False: the template adds nothing).
For each prompt it stores:
  - llama.cpp's final-position logits, the full 49152-vector (float32, llama_cpp.logits.gz),
    default settings (F16 KV cache), and its greedy 64-token continuation;
  - transformers' final-position logits and greedy 64-token continuation (argmax at every step,
    with its KV cache, not stopping at <|im_end|>) with the same GGUF
    loaded through AutoModelForCausalLM.from_pretrained(gguf_file=...), which dequantizes every
    weight to F32 (hf_gguf.logits.gz): the exact answer for the dequantized weights.
"""
import gzip
import json
import os
import pathlib
import sys

import numpy as np
import torch
import transformers

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "models" / "smollm2-135m"
OUT = ROOT / "tests" / "fixtures" / "engine" / "smollm2"
NEW_TOKENS = 64

CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write a haiku about the sea."}],
    [{"role": "system", "content": "You are a terse assistant. Answer in one sentence."},
     {"role": "user", "content": "Why is the sky blue?"}],
    [{"role": "user", "content": "List three prime numbers greater than 10."},
     {"role": "assistant", "content": "11, 13 and 17."},
     {"role": "user", "content": "Now three more, please."}],
    [{"role": "user", "content": "Explain in simple words what a hash table is, and give a Python example."}],
]


def write_f32_gz(path, arrays):
    with gzip.GzipFile(str(path), "wb", compresslevel=9, mtime=0) as f:
        f.write(np.ascontiguousarray(np.stack(arrays), dtype="<f4").tobytes())


def main():
    gguf_path = pathlib.Path(os.path.expanduser(os.environ.get(
        "BILLION_SMOLLM2_GGUF", "~/.cache/billion/models/SmolLM2-135M-Instruct.Q4_1.gguf")))
    if not gguf_path.exists():
        sys.exit(f"{gguf_path}: not found (run setup.sh or set BILLION_SMOLLM2_GGUF)")
    import llama_cpp
    OUT.mkdir(parents=True, exist_ok=True)
    tok = transformers.AutoTokenizer.from_pretrained(str(SHARED))
    texts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in CONVERSATIONS]

    # logits_all: without it llama-cpp-python leaves `scores` zero in this version
    llm = llama_cpp.Llama(model_path=str(gguf_path), n_ctx=512, n_threads=2, logits_all=True, verbose=False)
    prompts = [llm.tokenize(t.encode(), add_bos=False, special=True) for t in texts]
    lc_logits, lc_greedy = [], []
    for ids in prompts:
        llm.reset()
        llm.eval(ids)
        lc_logits.append(np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32))
        out = []
        for _ in range(NEW_TOKENS):
            t = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            out.append(t)
            llm.eval([t])
        lc_greedy.append(out)
    del llm

    torch.set_num_threads(2)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                              dtype=torch.float32, attn_implementation="eager")
    model.eval()
    # A plain greedy loop over the KV cache: generate() would apply the model's eos and
    # min_new_tokens processors; we want the argmax at every step, past <|im_end|> too.
    hf_logits, hf_greedy = [], []
    with torch.no_grad():
        for ids in prompts:
            out = model(torch.tensor([ids]), use_cache=True)
            hf_logits.append(out.logits[0, -1].float().numpy())
            toks = []
            for _ in range(NEW_TOKENS):
                t = int(out.logits[0, -1].argmax())
                toks.append(t)
                out = model(torch.tensor([[t]]), past_key_values=out.past_key_values, use_cache=True)
            hf_greedy.append(toks)

    write_f32_gz(OUT / "llama_cpp.logits.gz", lc_logits)
    write_f32_gz(OUT / "hf_gguf.logits.gz", hf_logits)
    expected = {
        "model": gguf_path.name, "vocab": int(lc_logits[0].shape[0]), "new_tokens": NEW_TOKENS,
        "texts": texts, "prompts": prompts,
        "llama_cpp": {"logits": "llama_cpp.logits.gz", "greedy": lc_greedy},
        "hf_gguf": {"logits": "hf_gguf.logits.gz", "greedy": hf_greedy},
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__,
                     "llama_cpp_python": llama_cpp.__version__},
    }
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
    for i in range(len(prompts)):
        d = np.abs(lc_logits[i] - hf_logits[i]).max()
        same = next((k for k in range(NEW_TOKENS) if lc_greedy[i][k] != hf_greedy[i][k]), NEW_TOKENS)
        print(f"prompt {i}: {len(prompts[i])} tokens, llama.cpp vs transformers max|diff| {d:.3f}, "
              f"greedy agree for {same}/{NEW_TOKENS}")


if __name__ == "__main__":
    main()
