#!/usr/bin/env python3
"""Writes tests/fixtures/engine/<name>/: tiny random-weight models of every architecture the
engine runs, made with transformers from the real configs in ../shared/models (sizes scaled
down, every feature kept), and the reference outputs tests/test_engine_fidelity.cpp checks.

Run with the reference environment (torch 2.15, transformers 5.23.0, gguf 0.19.0,
llama-cpp-python 0.3.36):
    /root/.cache/billion/refenv/bin/python tools/make_engine_fixtures.py
    /root/.cache/billion/refenv/bin/python tools/make_engine_fixtures.py --add q4_0   # one more GGUF type

Per model <name>:
  f32/    config.json, model.safetensors (F32), tokenizer.json (byte-level BPE: 256 byte tokens,
          2 merges, <|endoftext|> = 258, [PADn] for the other ids)
  bf16/   the same weights rounded to BF16 (not for the StableLM variants)
  <name>.f16.gguf, <name>.q8_0.gguf, <name>.q4_0.gguf  (converted here following llama.cpp's convert_hf_to_gguf:
          q/k row permutation for llama, rope_freqs for llama3 scaling, fused QKV reordered to
          [q; k; v] blocks for GPT-NeoX, stacked q/k norms for StableLM; gpt2 tokenizer metadata)
  expected.json  prompts (token ids; the fixture stores ids, not text), greedy continuations
          and the name of each logits file
  *.logits.gz    float32 little-endian [sum of prompt lengths, vocab] logits at every position

References: "hf_f32" = transformers F32 forward of f32/; "hf_bf16" = transformers F32 forward of
the BF16-rounded weights (what an exact engine computes from bf16/); "llama_cpp_f16",
"llama_cpp_q8_0", "llama_cpp_q4_0" = llama-cpp-python (logits_all=True, default F16 KV cache, 1 thread) on the
GGUF files. Greedy continuations are 32 tokens, never stopping at eos.

K-quant fixture (K_MODELS, `make_engine_fixtures.py tinyllama_k`): a TinyLlama widened so every
matrix row is a multiple of 256 (the K-quant super-block). Only <name>.q4_k.gguf (all Q4_K) and
<name>.q4_k_m.gguf (llama.cpp's Q4_K_M mixture, with Q6_K), made from the F16 GGUF by llama.cpp's
own quantizer (llama_model_quantize), are kept, with the references "llama_cpp_q4_k",
"llama_cpp_q4_k_m" (prompt in one batch, as above), "llama_cpp_q4_k_tok", "llama_cpp_q4_k_m_tok"
(the prompt one token per llama_eval call: llama.cpp's single-token path) and "hf_f32" (logits
only: the F32 weights are not committed).
"""
import ctypes
import gzip
import json
import math
import pathlib
import shutil
import sys

import numpy as np
import torch
import transformers
from safetensors.torch import save_file

import gguf
from gguf import GGMLQuantizationType as Q
from gguf.quants import quantize as gguf_quantize

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "models"
OUT = ROOT / "tests" / "fixtures" / "engine"
VOCAB = 384          # model vocabulary (embedding rows); ids >= 259 are never produced by text
CONTEXT = 128        # max_position_embeddings of every tiny model
NEW_TOKENS = 32
PROMPT_LENGTHS = (5, 12, 20)

# name -> (shared config, overrides). Features kept per the brief: GQA, tied/untied embeddings,
# llama3 rope scaling, partial rotary, parallel residual, fused QKV, GELU, biases, qk LayerNorm.
MODELS = {
    "llama32": ("llama3.2-1b", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2, head_dim=16)),
    "tinyllama": ("tinyllama", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=1)),
    "pythia": ("pythia-1b", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                 num_attention_heads=4)),
    "stablelm": ("stablelm", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=4)),
    "stablelm_qkln": ("stablelm", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=4, qk_layernorm=True)),
    "stablelm_par": ("stablelm", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=4,
                                      use_parallel_residual=True)),
}

# K-quant fixtures: every matrix row (the input dimension) a multiple of 256, the K-quant
# super-block, so llama.cpp's own quantizer can make Q4_K / Q4_K_M files of them. Only the
# quantized GGUFs and the reference logits are committed (the F32 weights would be 5.6 MB).
K_MODELS = {
    "tinyllama_k": ("tinyllama", dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=1)),
}
# fixture name -> (llama_ftype name, pure): "q4_k" makes every matrix Q4_K (Q4_K_S with pure,
# no mixture); "q4_k_m" is llama.cpp's Q4_K_M mixture (Q6_K for output.weight and some
# attn_v/ffn_down).
K_QUANTS = {"q4_k": ("LLAMA_FTYPE_MOSTLY_Q4_K_S", True), "q4_k_m": ("LLAMA_FTYPE_MOSTLY_Q4_K_M", False)}

EOS = 258
VARIANTS = ("stablelm_qkln", "stablelm_par")   # extra StableLM switches: no BF16 copy


# ------------------------------------------------------------------------------------------
# A minimal byte-level BPE: the 256 GPT-2 byte symbols, two merges, one special token.

def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


BYTE_TOKENS = [bytes_to_unicode()[b] for b in range(256)]
MERGED = ["Ġt", "he"]
MERGES = ["Ġ t", "h e"]


def tokenizer_json():
    vocab = {t: i for i, t in enumerate(BYTE_TOKENS + MERGED)}
    return {
        "version": "1.0", "truncation": None, "padding": None,
        # Every model id has a token (the generator decodes whatever the model picks).
        "added_tokens": [{"id": i, "content": "<|endoftext|>" if i == EOS else f"[PAD{i}]", "single_word": False,
                          "lstrip": False, "rstrip": False, "normalized": False, "special": True}
                         for i in range(EOS, VOCAB)],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": vocab, "merges": MERGES},
    }


def add_gguf_tokenizer(w: gguf.GGUFWriter):
    tokens = BYTE_TOKENS + MERGED + ["<|endoftext|>"] + [f"[PAD{i}]" for i in range(EOS + 1, VOCAB)]
    types = [1] * (EOS) + [3] + [4] * (VOCAB - EOS - 1)  # NORMAL, CONTROL, USER_DEFINED padding
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(MERGES)
    w.add_eos_token_id(EOS)
    w.add_bos_token_id(EOS)
    w.add_add_bos_token(False)


# ------------------------------------------------------------------------------------------

def make_config(name):
    shared, overrides = {**MODELS, **K_MODELS}[name]
    cfg = json.loads((SHARED / shared / "config.json").read_text())
    cfg.update(overrides)
    cfg["vocab_size"] = VOCAB
    cfg["max_position_embeddings"] = CONTEXT
    cfg["bos_token_id"] = EOS
    cfg["eos_token_id"] = EOS
    cfg["torch_dtype"] = "float32"
    cfg.pop("transformers_version", None)
    return cfg


def init_weights(model, seed):
    """Larger than default std so the logits spread over several units (random-init models
    otherwise give logits near zero, where every tolerance passes)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if p.dim() == 1 and pname.endswith("weight"):   # norm gains
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1:                               # biases
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                std = 0.25 if "emb" in pname or "embed" in pname else 0.12
                p.copy_(std * torch.randn(p.shape, generator=g))


def named_tensors(model, tied, model_type):
    out = {}
    for pname, p in model.named_parameters():
        if tied and pname == "lm_head.weight":
            continue
        if model_type == "gpt_neox" and pname == "lm_head.weight":
            pname = "embed_out.weight"   # the name in Pythia checkpoints (transformers 5 maps it)
        out[pname] = p.detach().clone().contiguous()
    return out


def hf_reference(model, prompts):
    """Logits at every position (F32, eager attention) and 32 greedy tokens."""
    logits, greedy = [], []
    gen = transformers.GenerationConfig(do_sample=False, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                                        eos_token_id=None, pad_token_id=0, bos_token_id=None)
    with torch.no_grad():
        for ids in prompts:
            x = torch.tensor([ids])
            logits.append(model(x).logits[0].float().numpy())
            out = model.generate(x, generation_config=gen, attention_mask=torch.ones_like(x))
            greedy.append(out[0, len(ids):].tolist())
    return np.concatenate(logits), greedy


def write_logits(path, logits):
    with gzip.GzipFile(str(path), "wb", compresslevel=9, mtime=0) as f:
        f.write(np.ascontiguousarray(logits, dtype="<f4").tobytes())


# ------------------------------------------------------------------------------------------
# GGUF conversion (convert_hf_to_gguf conventions).

def llama_permute(w, n_head):
    # HF rotate_half order → Meta/GGUF adjacent-pair order of the q/k output rows.
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama3_rope_factors(cfg):
    rs = cfg["rope_scaling"]
    base = cfg["rope_theta"]
    dim = cfg.get("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])
    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    factor, low, high, old = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"], rs["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old / low, old / high
    out = []
    for f in freqs.tolist():
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def gguf_tensors(cfg, t):
    """HF tensors → (gguf name, float32 numpy array in PyTorch shape)."""
    mt = cfg["model_type"]
    n_head = cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads", n_head)
    hd = cfg.get("head_dim", cfg["hidden_size"] // n_head)
    res = []
    g = lambda k: t[k].float().numpy()
    if mt == "gpt_neox":
        res.append(("token_embd.weight", g("gpt_neox.embed_in.weight")))
        res.append(("output_norm.weight", g("gpt_neox.final_layer_norm.weight")))
        res.append(("output_norm.bias", g("gpt_neox.final_layer_norm.bias")))
        res.append(("output.weight", g("embed_out.weight")))
        for i in range(cfg["num_hidden_layers"]):
            p = f"gpt_neox.layers.{i}."
            b = f"blk.{i}."
            res += [(b + "attn_norm.weight", g(p + "input_layernorm.weight")), (b + "attn_norm.bias", g(p + "input_layernorm.bias")),
                    (b + "ffn_norm.weight", g(p + "post_attention_layernorm.weight")), (b + "ffn_norm.bias", g(p + "post_attention_layernorm.bias"))]
            qkv = g(p + "attention.query_key_value.weight").reshape(n_head, 3, hd, -1)
            res.append((b + "attn_qkv.weight", np.concatenate([qkv[:, j].reshape(n_head * hd, -1) for j in range(3)])))
            qkvb = g(p + "attention.query_key_value.bias").reshape(n_head, 3, hd)
            res.append((b + "attn_qkv.bias", np.concatenate([qkvb[:, j].reshape(-1) for j in range(3)])))
            res += [(b + "attn_output.weight", g(p + "attention.dense.weight")), (b + "attn_output.bias", g(p + "attention.dense.bias")),
                    (b + "ffn_up.weight", g(p + "mlp.dense_h_to_4h.weight")), (b + "ffn_up.bias", g(p + "mlp.dense_h_to_4h.bias")),
                    (b + "ffn_down.weight", g(p + "mlp.dense_4h_to_h.weight")), (b + "ffn_down.bias", g(p + "mlp.dense_4h_to_h.bias"))]
        return res
    llama = mt == "llama"
    res.append(("token_embd.weight", g("model.embed_tokens.weight")))
    res.append(("output_norm.weight", g("model.norm.weight")))
    if not llama:
        res.append(("output_norm.bias", g("model.norm.bias")))
    if "lm_head.weight" in t:
        res.append(("output.weight", g("lm_head.weight")))
    if llama and cfg.get("rope_scaling"):
        res.append(("rope_freqs.weight", llama3_rope_factors(cfg)))
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        b = f"blk.{i}."
        res.append((b + "attn_norm.weight", g(p + "input_layernorm.weight")))
        if not llama:
            res.append((b + "attn_norm.bias", g(p + "input_layernorm.bias")))
        if p + "post_attention_layernorm.weight" in t:
            res.append((b + "ffn_norm.weight", g(p + "post_attention_layernorm.weight")))
            if not llama:
                res.append((b + "ffn_norm.bias", g(p + "post_attention_layernorm.bias")))
        q, k = g(p + "self_attn.q_proj.weight"), g(p + "self_attn.k_proj.weight")
        if llama:
            q, k = llama_permute(q, n_head), llama_permute(k, n_kv)
        res += [(b + "attn_q.weight", q), (b + "attn_k.weight", k), (b + "attn_v.weight", g(p + "self_attn.v_proj.weight")),
                (b + "attn_output.weight", g(p + "self_attn.o_proj.weight"))]
        for x in "qkv":
            if p + f"self_attn.{x}_proj.bias" in t:
                res.append((b + f"attn_{x}.bias", g(p + f"self_attn.{x}_proj.bias")))
        if p + "self_attn.q_layernorm.norms.0.weight" in t:
            res.append((b + "attn_q_norm.weight", np.stack([g(p + f"self_attn.q_layernorm.norms.{h}.weight") for h in range(n_head)])))
            res.append((b + "attn_k_norm.weight", np.stack([g(p + f"self_attn.k_layernorm.norms.{h}.weight") for h in range(n_kv)])))
        res += [(b + "ffn_gate.weight", g(p + "mlp.gate_proj.weight")), (b + "ffn_up.weight", g(p + "mlp.up_proj.weight")),
                (b + "ffn_down.weight", g(p + "mlp.down_proj.weight"))]
    return res


def write_gguf(path, cfg, tensors, qtype):
    mt = cfg["model_type"]
    arch = {"llama": "llama", "gpt_neox": "gptneox", "stablelm": "stablelm"}[mt]
    n_head = cfg["num_attention_heads"]
    hd = cfg.get("head_dim", cfg["hidden_size"] // n_head)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(path.stem)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(cfg.get("num_key_value_heads", n_head))
    w.add_vocab_size(cfg["vocab_size"])
    w.add_file_type({Q.F16: gguf.LlamaFileType.MOSTLY_F16, Q.Q8_0: gguf.LlamaFileType.MOSTLY_Q8_0,
                     Q.Q4_0: gguf.LlamaFileType.MOSTLY_Q4_0}[qtype])
    if mt == "llama":
        w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
        w.add_rope_freq_base(cfg["rope_theta"])
        w.add_rope_dimension_count(hd)
        w.add_key_length(hd)
        w.add_value_length(hd)
    elif mt == "gpt_neox":
        w.add_layer_norm_eps(cfg["layer_norm_eps"])
        w.add_rope_dimension_count(int(cfg["rotary_pct"] * hd))
        w.add_rope_freq_base(cfg.get("rotary_emb_base", 10000))
        w.add_parallel_residual(cfg["use_parallel_residual"])
    else:
        w.add_layer_norm_eps(cfg["layer_norm_eps"])
        w.add_rope_dimension_count(int(cfg["partial_rotary_factor"] * hd))
        w.add_rope_freq_base(cfg["rope_theta"])
        w.add_parallel_residual(cfg["use_parallel_residual"])
    add_gguf_tokenizer(w)
    for name, a in tensors:
        a = np.ascontiguousarray(a, dtype=np.float32)
        if a.ndim == 1 or name.endswith("_norm.weight"):
            w.add_tensor(name, a)                       # norms, biases, rope_freqs stay F32
        elif qtype == Q.F16:
            w.add_tensor(name, a.astype(np.float16))
        else:
            w.add_tensor(name, gguf_quantize(a, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llama_cpp_reference(path, prompts, one_token_at_a_time=False):
    """llama.cpp's logits at every prompt position and greedy continuations. The prompt goes in
    one llama_decode call (llama.cpp's batched prefill), or with one_token_at_a_time one call per
    token (its single-token path, as in the continuation)."""
    import llama_cpp
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=CONTEXT, n_batch=CONTEXT, logits_all=True, n_threads=1,
                          verbose=False)
    logits, greedy = [], []
    for ids in prompts:
        llm.reset()
        if one_token_at_a_time:
            for tok in ids:
                llm.eval([tok])
        else:
            llm.eval(ids)
        logits.append(np.array(llm.scores[: len(ids)], dtype=np.float32))
        out = []
        for _ in range(NEW_TOKENS):
            tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            out.append(tok)
            llm.eval([tok])
        greedy.append(out)
    del llm
    return np.concatenate(logits), greedy


def make(name, seed):
    cfg = make_config(name)
    folder = OUT / name
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "f32").mkdir(parents=True)
    (folder / "bf16").mkdir()
    config = transformers.AutoConfig.for_model(**cfg)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=torch.float32)
    init_weights(model, seed)
    model.eval()
    tied = bool(cfg.get("tie_word_embeddings", False))
    rng = np.random.default_rng(seed)
    # Ids below 259 (bytes, merges, eos) and above (embedding rows no text reaches) alike.
    prompts = [rng.integers(0, VOCAB, n).tolist() for n in PROMPT_LENGTHS]

    tensors = named_tensors(model, tied, cfg["model_type"])
    with_bf16 = name not in VARIANTS
    if not with_bf16:
        (folder / "bf16").rmdir()
    for sub, dtype in (("f32", torch.float32), ("bf16", torch.bfloat16))[: 2 if with_bf16 else 1]:
        cfg_out = dict(cfg, torch_dtype="float32" if sub == "f32" else "bfloat16")
        (folder / sub / "config.json").write_text(json.dumps(cfg_out, indent=2) + "\n")
        (folder / sub / "tokenizer.json").write_text(json.dumps(tokenizer_json(), ensure_ascii=False) + "\n")
        save_file({k: v.to(dtype) for k, v in tensors.items()}, str(folder / sub / "model.safetensors"),
                  metadata={"format": "pt"})

    expected = {"name": name, "config_from": MODELS[name][0], "vocab": VOCAB, "context": CONTEXT,
                "prompts": prompts, "new_tokens": NEW_TOKENS, "references": {}}
    refs = expected["references"]

    logits, greedy = hf_reference(model, prompts)
    write_logits(folder / "hf_f32.logits.gz", logits)
    refs["hf_f32"] = {"model": "f32", "logits": "hf_f32.logits.gz", "greedy": greedy,
                      "max_abs_logit": float(np.abs(logits).max())}
    gt = gguf_tensors(cfg, tensors)
    for qname, qtype in (("f16", Q.F16), ("q8_0", Q.Q8_0)):
        path = folder / f"{name}.{qname}.gguf"
        write_gguf(path, cfg, gt, qtype)
        try:
            lg, gr = llama_cpp_reference(path, prompts)
        except Exception as e:  # an architecture llama.cpp cannot load: keep no reference
            print(f"{name}: llama.cpp could not run {path.name}: {e}", file=sys.stderr)
            path.unlink()
            continue
        write_logits(folder / f"llama_cpp_{qname}.logits.gz", lg)
        refs[f"llama_cpp_{qname}"] = {"model": path.name, "logits": f"llama_cpp_{qname}.logits.gz", "greedy": gr,
                                      "max_abs_logit": float(np.abs(lg).max()),
                                      "max_diff_vs_hf_f32": float(np.abs(lg - logits).max())}
    if with_bf16:
        # The BF16 copy's exact answer: the same graph in F32 on the rounded weights (last, as
        # it rounds the model in place).
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(torch.bfloat16).float())
        logits_b, greedy_b = hf_reference(model, prompts)
        write_logits(folder / "hf_bf16.logits.gz", logits_b)
        refs["hf_bf16"] = {"model": "bf16", "logits": "hf_bf16.logits.gz", "greedy": greedy_b,
                           "max_abs_logit": float(np.abs(logits_b).max()),
                           "max_diff_vs_f32": float(np.abs(logits_b - logits).max())}
    (folder / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    summary = {k: (v["max_abs_logit"], v.get("max_diff_vs_f32", v.get("max_diff_vs_hf_f32"))) for k, v in refs.items()}
    print(name, summary)


def add_quantized_reference(name, qname):
    """Adds one more llama.cpp reference to an existing fixture without touching the others: the
    GGUF in `qname` converted from the committed f32/ weights, llama.cpp's logits and greedy
    continuations on the committed prompts, and its entry in expected.json."""
    from safetensors.numpy import load_file
    cfg = make_config(name)
    folder = OUT / name
    expected = json.loads((folder / "expected.json").read_text())
    tensors = {k: torch.from_numpy(v) for k, v in load_file(str(folder / "f32" / "model.safetensors")).items()}
    path = folder / f"{name}.{qname}.gguf"
    write_gguf(path, cfg, gguf_tensors(cfg, tensors), getattr(Q, qname.upper()))
    lg, gr = llama_cpp_reference(path, expected["prompts"])
    hf = read_logits(folder / "hf_f32.logits.gz", expected["vocab"])
    write_logits(folder / f"llama_cpp_{qname}.logits.gz", lg)
    expected["references"][f"llama_cpp_{qname}"] = {
        "model": path.name, "logits": f"llama_cpp_{qname}.logits.gz", "greedy": gr,
        "max_abs_logit": float(np.abs(lg).max()), "max_diff_vs_hf_f32": float(np.abs(lg - hf).max())}
    (folder / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print(name, qname, float(np.abs(lg).max()), float(np.abs(lg - hf).max()))


def llama_cpp_quantize(src, dst, qname):
    """llama.cpp's own quantizer (llama_model_quantize through llama-cpp-python's C API), with
    its default parameters but the ftype (and `pure` for a single-type file)."""
    import llama_cpp
    ftype, pure = K_QUANTS[qname]
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, ftype)
    params.pure = pure
    params.nthread = 1
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize {src} -> {dst} ({ftype}) returned {rc}")


def gguf_tensor_types(path):
    """name -> GGML type name, read back with gguf-py."""
    return {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(path)).tensors}


def check_kquant_types(path, qname):
    """q4_k: every matrix Q4_K, 1-D tensors F32. q4_k_m: Q4_K and at least one Q6_K matrix."""
    types = gguf_tensor_types(path)
    for name, t in sorted(types.items()):
        print(f"  {path.name}: {name:28s} {t}")
    matrices = {n: t for n, t in types.items() if not (n.endswith("norm.weight") or n.endswith(".bias"))}
    others = {n: t for n, t in types.items() if n not in matrices}
    if any(t != "F32" for t in others.values()):
        raise RuntimeError(f"{path.name}: 1-D tensors not F32: {others}")
    kinds = set(matrices.values())
    if qname == "q4_k" and kinds != {"Q4_K"}:
        raise RuntimeError(f"{path.name}: expected only Q4_K matrices, got {sorted(kinds)}")
    if qname == "q4_k_m" and not ({"Q4_K", "Q6_K"} <= kinds and kinds <= {"Q4_K", "Q6_K"}):
        raise RuntimeError(f"{path.name}: expected a Q4_K + Q6_K mixture, got {sorted(kinds)}")
    return types


def make_kquant(name, seed):
    """A K-quant fixture: the random model, transformers' F32 logits (hf_f32, weights not
    committed), the F16 GGUF (written to a temporary folder, the quantizer's input; llama.cpp's
    logits on it are recorded as a conversion check only), and per K_QUANTS entry the GGUF made
    by llama.cpp's quantizer with llama.cpp's logits and greedy continuations."""
    import tempfile
    cfg = make_config(name)
    folder = OUT / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    config = transformers.AutoConfig.for_model(**cfg)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=torch.float32)
    init_weights(model, seed)
    model.eval()
    tied = bool(cfg.get("tie_word_embeddings", False))
    rng = np.random.default_rng(seed)
    prompts = [rng.integers(0, VOCAB, n).tolist() for n in PROMPT_LENGTHS]
    tensors = named_tensors(model, tied, cfg["model_type"])

    expected = {"name": name, "config_from": K_MODELS[name][0], "vocab": VOCAB, "context": CONTEXT,
                "prompts": prompts, "new_tokens": NEW_TOKENS, "references": {}}
    refs = expected["references"]
    logits, greedy = hf_reference(model, prompts)
    write_logits(folder / "hf_f32.logits.gz", logits)
    refs["hf_f32"] = {"model": None, "logits": "hf_f32.logits.gz", "greedy": greedy,
                      "max_abs_logit": float(np.abs(logits).max()),
                      "note": "transformers F32; the F32 weights are not committed"}
    with tempfile.TemporaryDirectory() as tmp:
        f16 = pathlib.Path(tmp) / f"{name}.f16.gguf"
        write_gguf(f16, cfg, gguf_tensors(cfg, tensors), Q.F16)
        lg, _ = llama_cpp_reference(f16, prompts)
        expected["f16_conversion_check"] = {
            "what": "llama.cpp on the (uncommitted) F16 GGUF against hf_f32: checks the conversion",
            "max_diff_vs_hf_f32": float(np.abs(lg - logits).max())}
        for qname in K_QUANTS:
            path = folder / f"{name}.{qname}.gguf"
            llama_cpp_quantize(f16, path, qname)
            types = check_kquant_types(path, qname)
            lg, gr = llama_cpp_reference(path, prompts)
            write_logits(folder / f"llama_cpp_{qname}.logits.gz", lg)
            refs[f"llama_cpp_{qname}"] = {
                "model": path.name, "logits": f"llama_cpp_{qname}.logits.gz", "greedy": gr,
                "quantizer": f"llama_model_quantize {K_QUANTS[qname][0]} pure={K_QUANTS[qname][1]}",
                "tensor_types": dict(sorted(types.items())),
                "max_abs_logit": float(np.abs(lg).max()), "max_diff_vs_hf_f32": float(np.abs(lg - logits).max())}
            # llama.cpp's single-token path on the same file: its batched prefill (repacked K-quant
            # GEMM) sums in another float order, and that alone moves some logits by ~2% here.
            lt, gt_ = llama_cpp_reference(path, prompts, one_token_at_a_time=True)
            write_logits(folder / f"llama_cpp_{qname}_tok.logits.gz", lt)
            refs[f"llama_cpp_{qname}_tok"] = {
                "model": path.name, "logits": f"llama_cpp_{qname}_tok.logits.gz", "greedy": gt_,
                "prompt": "one llama_eval call per prompt token",
                "max_abs_logit": float(np.abs(lt).max()), "max_diff_vs_hf_f32": float(np.abs(lt - logits).max()),
                "max_diff_vs_batched_prefill": float(np.abs(lt - lg).max())}
    (folder / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print(name, {k: (v["max_abs_logit"], v.get("max_diff_vs_hf_f32")) for k, v in refs.items()},
          expected["f16_conversion_check"])


def read_logits(path, vocab):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype="<f4").reshape(-1, vocab)


def main():
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    if len(sys.argv) > 2 and sys.argv[1] == "--add":  # --add q4_0 [names...]
        for name in sys.argv[3:] or list(MODELS):
            add_quantized_reference(name, sys.argv[2])
        return
    names = sys.argv[1:] or list(MODELS) + list(K_MODELS)
    for i, name in enumerate(MODELS):
        if name in names:
            make(name, 1000 + i)
    for i, name in enumerate(K_MODELS):   # seeds continue after MODELS' (1006, ...)
        if name in names:
            make_kquant(name, 1000 + len(MODELS) + i)
    (OUT / "VERSIONS.txt").write_text(
        f"torch {torch.__version__}\ntransformers {transformers.__version__}\n"
        f"gguf {gguf.__version__ if hasattr(gguf, '__version__') else '0.19.0'}\n"
        f"llama-cpp-python {__import__('llama_cpp').__version__}\nnumpy {np.__version__}\n")


if __name__ == "__main__":
    main()
