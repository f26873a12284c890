#!/usr/bin/env python3
"""Reference fixtures for LoRA fine-tuning (tests/test_lora_peft.cpp), made with PyTorch + PEFT.

For a tiny random Llama (SmolLM2-135M's config scaled down: GQA, tied embeddings, SwiGLU) and a
tiny random GPT-NeoX (Pythia's config scaled down: LayerNorm with bias, fused per-head qkv,
partial rotary 0.25, parallel residual, GELU):
  * the base model (config.json + model.safetensors, float32),
  * the PEFT adapter before training (adapter_init/: PEFT's own initialisation, A kaiming-uniform,
    B zero) so the C++ run starts from the same values,
  * 10 optimizer steps of LoRA training on alpaca samples (Alpaca template, prompt masked with
    -100, tokenized by the SmolLM2 tokenizer, ids folded into the tiny vocabulary with id % vocab,
    truncated to 64 tokens, samples without a response token left out): 2 micro-batches of 2 sequences per step, loss = sum of token
    cross-entropies / target tokens of the step, clip_grad_norm_(1.0), AdamW(betas 0.9/0.999,
    eps 1e-8, weight_decay 0), lr 2e-3 with 2 warm-up steps then linear decay over 10 steps,
    no dropout. Per-step losses go to reference.json, the final adapter to adapter_final/.
  * logits of the PEFT model with the final adapter on one sequence (reference.json).
Also written: tokenization.json, the exact input_ids/labels of the first alpaca samples with the
real SmolLM2 tokenizer (for the C++ data pipeline test).

  --check-ours DIR  loads an adapter saved by our engine (DIR/<family>/, written by
                    test_lora_peft) with PEFT onto the same base and compares PEFT's logits with
                    the engine's (DIR/<family>/engine_logits.json).

Usage: /root/.cache/billion/refenv/bin/python tools/make_lora_reference.py [--check-ours DIR]
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared")
OUT = os.path.join(ROOT, "tests", "fixtures", "lora")
ALPACA = os.path.join(SHARED, "data", "alpaca", "alpaca_data_cleaned_first_1000.json")
TOKENIZER = os.path.join(SHARED, "models", "smollm2-135m")

VOCAB, MAX_LEN, STEPS, BATCH, ACCUM, LR, WARMUP = 128, 64, 10, 2, 2, 2e-3, 2
RANK, ALPHA = 4, 8


def prompt_of(e):
    if e.get("input"):
        return ("Below is an instruction that describes a task, paired with an input that provides further context. "
                "Write a response that appropriately completes the request.\n\n### Instruction:\n"
                f"{e['instruction']}\n\n### Input:\n{e['input']}\n\n### Response:")
    return ("Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
            f"### Instruction:\n{e['instruction']}\n\n### Response:")


def tokenize(tok, e, max_len=None):
    p = prompt_of(e)
    prompt_ids = tok(p)["input_ids"]
    ids = tok(p + e["output"])["input_ids"] + [tok.eos_token_id]
    labels = [-100] * len(prompt_ids) + ids[len(prompt_ids):]
    if max_len:
        ids, labels = ids[:max_len], labels[:max_len]
    return ids, labels


def tiny_model(family):
    from transformers import AutoConfig, AutoModelForCausalLM
    src = "smollm2-135m" if family == "llama" else "pythia-1b"
    cfg = AutoConfig.from_pretrained(os.path.join(SHARED, "models", src))
    cfg.vocab_size = VOCAB
    cfg.hidden_size = 32
    cfg.num_hidden_layers = 2
    cfg.num_attention_heads = 4
    cfg.intermediate_size = 64
    cfg.max_position_embeddings = 128
    if family == "llama":
        cfg.num_key_value_heads = 2
        cfg.head_dim = 8
    cfg.torch_dtype = "float32"
    torch.manual_seed(1234 if family == "llama" else 4321)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").float()
    with torch.no_grad():  # norms at 1 / biases at 0 would hide their gradients' paths
        for name, p in model.named_parameters():
            if "norm" in name or "bias" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model


def targets_of(family):
    if family == "llama":
        return ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    return ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"]


def lr_at(step):
    if step < WARMUP:
        return LR * step / WARMUP
    return LR * max(0.0, (STEPS - step) / (STEPS - WARMUP))


def make_family(family, samples):
    from peft import LoraConfig, get_peft_model
    d = os.path.join(OUT, family)
    os.makedirs(d, exist_ok=True)
    base = tiny_model(family)
    base.save_pretrained(os.path.join(d, "base"), safe_serialization=True)
    torch.manual_seed(7)
    peft_model = get_peft_model(base, LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=targets_of(family)))
    peft_model.save_pretrained(os.path.join(d, "adapter_init"), save_embedding_layers=False)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    steps, losses = [], []
    for step in range(STEPS):
        micro = []
        for m in range(ACCUM):
            first = (step * BATCH * ACCUM + m * BATCH) % len(samples)
            micro.append([samples[(first + j) % len(samples)] for j in range(BATCH)])
        n_targets = sum(sum(1 for l in lab[1:] if l != -100) for mb in micro for _, lab in mb)
        opt.zero_grad()
        total = 0.0
        for mb in micro:
            # One sequence per forward (no padding): the micro-batch's gradient is the sum.
            for ids, labels in mb:
                logits = peft_model(input_ids=torch.tensor([ids])).logits[0]
                loss = F.cross_entropy(logits[:-1], torch.tensor(labels[1:]), ignore_index=-100, reduction="sum") / n_targets
                loss.backward()
                total += loss.item()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        opt.step()
        losses.append(total)
        steps.append([[{"ids": i, "labels": l} for i, l in mb] for mb in micro])
        print(f"{family} step {step + 1}: loss {total:.6f}")
    peft_model.save_pretrained(os.path.join(d, "adapter_final"), save_embedding_layers=False)
    eval_ids = samples[0][0]
    with torch.no_grad():
        logits = peft_model(input_ids=torch.tensor([eval_ids])).logits[0]
    ref = {"family": family, "rank": RANK, "alpha": ALPHA, "lr": LR, "warmup": WARMUP, "steps": STEPS, "max_grad_norm": 1.0,
           "batches": steps, "losses": losses, "eval_ids": eval_ids, "expected_logits": logits.tolist(),
           "versions": {"torch": torch.__version__, "peft": __import__("peft").__version__,
                        "transformers": __import__("transformers").__version__}}
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(ref, f)
    return peft_model


def check_ours(dir_):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    ok = True
    for family in ["llama", "gptneox"]:
        ours = os.path.join(dir_, family)
        base = AutoModelForCausalLM.from_pretrained(os.path.join(OUT, family, "base"), attn_implementation="eager").float()
        model = PeftModel.from_pretrained(base, ours)
        with open(os.path.join(ours, "engine_logits.json")) as f:
            eng = json.load(f)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([eng["ids"]])).logits[0]
        diff = (logits - torch.tensor(eng["logits"])).abs().max().item()
        print(f"{family}: PEFT with our adapter vs our engine with --lora: max |logit diff| = {diff:.3g}")
        ok &= diff < 1e-4
    sys.exit(0 if ok else 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check-ours")
    args = ap.parse_args()
    if args.check_ours:
        return check_ours(args.check_ours)
    from transformers import AutoTokenizer
    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(TOKENIZER)
    data = json.load(open(ALPACA))
    os.makedirs(OUT, exist_ok=True)
    toks = []
    for i in range(6):
        ids, labels = tokenize(tok, data[i])
        toks.append({"index": i, "ids": ids, "labels": labels})
    with open(os.path.join(OUT, "tokenization.json"), "w") as f:
        json.dump({"tokenizer": "smollm2-135m", "samples": toks}, f)
    samples = []
    for e in data[:40]:
        ids, labels = tokenize(tok, e, MAX_LEN)
        if all(l == -100 for l in labels[1:]) or len(samples) == 16:
            continue  # no response token within MAX_LEN (our trainer skips these too)
        samples.append(([i % VOCAB for i in ids], [(l % VOCAB if l != -100 else -100) for l in labels]))
    for family in ["llama", "gptneox"]:
        make_family(family, samples)


if __name__ == "__main__":
    main()
