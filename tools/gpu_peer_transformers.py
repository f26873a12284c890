#!/usr/bin/env python3
"""The Python stack's speed and memory on a GPU, for comparison with `billion bench --device
cuda` on the same shapes: transformers' generate() in float16 on random weights of the exact
shape of each config (no weights needed; random weights time the same as trained ones).

Measured as eval/speed.cpp measures ours: a prompt of --prompt-tokens tokens, one warm-up, then
--runs timed runs of --new-tokens greedy tokens (min_new_tokens forces the full length); prefill
tok/s from a forward pass over the prompt, decode tok/s over the tokens after the first; peak
memory is torch.cuda.max_memory_allocated (tensors, not the CUDA context).

    python3 tools/gpu_peer_transformers.py --config ../shared/models/tinyllama/config.json ... --out peer.json

Run on the lent GPU machine by tools/gpu_checks.sh (its python3 holds torch and transformers).
"""
import argparse
import json
import statistics
import sys
import time

import torch
import transformers


def measure(config_path, prompt_tokens, new_tokens, runs, dtype):
    config = transformers.AutoConfig.from_pretrained(config_path)
    torch.manual_seed(0)
    torch.cuda.reset_peak_memory_stats()
    with torch.device("cuda"):
        model = transformers.AutoModelForCausalLM.from_config(config, torch_dtype=dtype)
    model.eval()
    ids = torch.randint(100, min(config.vocab_size, 30000), (1, prompt_tokens), device="cuda")
    gen = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    with torch.inference_mode():
        model.generate(ids, **gen)  # warm-up
        prefill, total = [], []
        for _ in range(runs):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            model(ids)
            torch.cuda.synchronize()
            prefill.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            out = model.generate(ids, **gen)
            torch.cuda.synchronize()
            total.append(time.perf_counter() - t0)
            assert out.shape[1] == prompt_tokens + new_tokens
    # generate() = prefill + (new_tokens - 1) decode steps; decode rate over the steps after the first.
    decode = [(new_tokens - 1) / max(t - p, 1e-9) for t, p in zip(total, prefill)]
    return {
        "prefill_tokens_per_second": statistics.mean(prompt_tokens / p for p in prefill),
        "decode_tokens_per_second": statistics.mean(decode),
        "decode_tokens_per_second_std": statistics.stdev(decode) if len(decode) > 1 else 0.0,
        "peak_memory_bytes": torch.cuda.max_memory_allocated(),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", action="append", required=True, help="a config.json (repeatable)")
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    result = {
        "engine": f"transformers {transformers.__version__}, torch {torch.__version__}, float16, generate(), random weights",
        "gpu_name": torch.cuda.get_device_name(0),
        "prompt_tokens": args.prompt_tokens,
        "new_tokens": args.new_tokens,
        "runs": args.runs,
        "models": {},
    }
    for path in args.config:
        r = measure(path, args.prompt_tokens, args.new_tokens, args.runs, torch.float16)
        result["models"][path] = r
        print(f"{path}: prefill {r['prefill_tokens_per_second']:.0f} tok/s, decode {r['decode_tokens_per_second']:.1f} tok/s, "
              f"peak {r['peak_memory_bytes'] / 1e9:.2f} GB", file=sys.stderr)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
