#!/usr/bin/env python3
"""Writes the small seed files of the GGUF fuzz corpus with the PyPI `gguf` package (an
independent writer), so the fuzzer starts from real, valid structure.
Run with the reference environment: tools/README.md."""
import os
import sys

import numpy as np
import gguf

out = os.path.join(os.path.dirname(__file__), "..", "fuzz", "corpus", "gguf")
os.makedirs(out, exist_ok=True)


def write(name, build):
    path = os.path.join(out, name)
    w = gguf.GGUFWriter(path, "llama")
    build(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(path, os.path.getsize(path))


def tiny_llama(w):
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(32)
    w.add_feed_forward_length(64)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(["a", "b", "ab", "<s>"])
    w.add_token_types([1, 1, 1, 3])
    w.add_token_merges(["a b"])
    w.add_bos_token_id(3)
    w.add_array("test.nested", [[1, 2], [3]])
    w.add_float64("test.f64", 0.25)
    w.add_int8("test.i8", -3)
    w.add_bool("test.bool", True)
    rng = np.random.default_rng(0)
    w.add_tensor("token_embd.weight", rng.standard_normal((4, 32)).astype(np.float32))
    w.add_tensor("blk.0.attn_norm.weight", np.ones(32, dtype=np.float16))
    q = gguf.quants.quantize(rng.standard_normal((2, 64)).astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("blk.0.attn_q.weight", q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)


def metadata_only(w):
    w.add_string("general.name", "seed")
    w.add_uint64("test.u64", 2**40)
    w.add_array("test.strings", ["x", "yy", ""])


write("tiny_llama.gguf", tiny_llama)
write("metadata_only.gguf", metadata_only)
