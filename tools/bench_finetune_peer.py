#!/usr/bin/env python3
"""PyTorch + PEFT side of bench/bench_finetune: LoRA (r=8, alpha=16, q_proj,v_proj, no dropout)
training tokens/s for a model shape built from a Hugging Face config with random float32 weights;
the same batch layout as the C++ bench (batch × seq random tokens, first half of each sequence
masked with -100), AdamW, clip_grad_norm_(1.0); one untimed warm-up step, then --steps timed.
Writes JSON: tokens_per_second, peak_rss_bytes, versions."""
import argparse
import json
import resource
import time

import torch
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM
    cfg = AutoConfig.from_pretrained(a.config)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    ids = torch.randint(0, cfg.vocab_size, (a.batch, a.seq))
    labels = ids.clone()
    labels[:, : a.seq // 2] = -100

    def step():
        opt.zero_grad()
        logits = model(input_ids=ids).logits
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, cfg.vocab_size), labels[:, 1:].reshape(-1), ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    step()
    t = time.perf_counter()
    for _ in range(a.steps):
        step()
    secs = time.perf_counter() - t
    out = {"tokens_per_second": a.steps * a.batch * a.seq / secs, "threads": torch.get_num_threads(),
           "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
           "versions": {"torch": torch.__version__, "peft": __import__("peft").__version__,
                        "transformers": __import__("transformers").__version__}}
    json.dump(out, open(a.out, "w"))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
