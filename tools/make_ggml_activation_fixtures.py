#!/usr/bin/env python3
"""Writes tests/fixtures/kernels/ggml_activations.json: what ggml's CPU backend computes for
activation quantization and the quantized dot products, used by tests/test_quant.cpp to pin
our activation formats (kernels/quant.h BlockQ8A, BlockQ8K) and dot products to llama.cpp's.

Run with the reference environment (llama-cpp-python 0.3.36, whose libggml-cpu.so was built
from source with native flags on an x86-64 AVX2 machine):
    /root/.cache/billion/refenv/bin/python tools/make_ggml_activation_fixtures.py

It calls the exported functions of that library through ctypes: quantize_row_q8_0, _q8_1, _q8_K
(the AVX2 paths: ties round to even) and ggml_vec_dot_<w>_<a>, with weights quantized by
ggml_quantize_chunk. Everything is stored as hex of the raw little-endian bytes, so floats
compare bit for bit.
"""
import ctypes
import glob
import json
import pathlib

import numpy as np
import llama_cpp

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "kernels" / "ggml_activations.json"
COLS = 512          # two K-quant super-blocks, sixteen 32-element blocks
N_ACT = 6           # activation rows
N_W = 4             # weight rows per type

# ggml type ids (ggml.h) and block sizes.
TYPES = {"Q4_0": (2, 18), "Q4_1": (3, 20), "Q5_0": (6, 22), "Q5_1": (7, 24), "Q8_0": (8, 34),
         "Q4_K": (12, 144), "Q5_K": (13, 176), "Q6_K": (14, 210)}
ACT = {"Q4_0": "q8_0", "Q5_0": "q8_0", "Q8_0": "q8_0", "Q4_1": "q8_1", "Q5_1": "q8_1",
       "Q4_K": "q8_K", "Q5_K": "q8_K", "Q6_K": "q8_K"}
ACT_BYTES = {"q8_0": 34, "q8_1": 36, "q8_K": 292}
ACT_ELEMS = {"q8_0": 32, "q8_1": 32, "q8_K": 256}


def main():
    lib = pathlib.Path(glob.glob(str(pathlib.Path(llama_cpp.__file__).parent / "lib"))[0])
    base = ctypes.CDLL(str(lib / "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
    cpu = ctypes.CDLL(str(lib / "libggml-cpu.so"), mode=ctypes.RTLD_GLOBAL)
    cpu.ggml_cpu_init()
    ptr = lambda a: a.ctypes.data_as(ctypes.c_void_p)

    rng = np.random.default_rng(20261126)
    x = (rng.standard_normal((N_ACT, COLS)) * rng.uniform(0.05, 8.0, (N_ACT, 1))).astype(np.float32)
    x[1, 32:64] = 0.0                                   # an all-zero block
    x[2, :32] = np.arange(32) - 15.5                    # exact ties after scaling (max 16.5 → no)
    x[2, 0] = 127.0                                     # scale 1: x·127/127 = x, halves are ties
    x[3, 256:] = 0.0                                    # an all-zero K super-block
    x[4, 5] = -50.0                                     # negative extreme: ggml's Q8_K d < 0
    x[5] *= 1e-3                                        # small magnitudes (fp16 subnormal scales)
    w = rng.standard_normal((N_W, COLS)).astype(np.float32)

    out = {"cols": COLS, "n_act": N_ACT, "n_w": N_W, "llama_cpp_python": llama_cpp.__version__,
           "x": x.tobytes().hex(), "act": {}, "types": {}}
    acts = {}
    for name, fn in [("q8_0", cpu.quantize_row_q8_0), ("q8_1", cpu.quantize_row_q8_1), ("q8_K", cpu.quantize_row_q8_K)]:
        buf = np.zeros(N_ACT * COLS // ACT_ELEMS[name] * ACT_BYTES[name], np.uint8)
        fn(ptr(x), ptr(buf), ctypes.c_int64(N_ACT * COLS))
        acts[name] = buf.reshape(N_ACT, -1)
        out["act"][name] = buf.tobytes().hex()

    base.ggml_quantize_chunk.restype = ctypes.c_size_t
    for tname, (tid, bbytes) in TYPES.items():
        row_bytes = COLS // (256 if "K" in tname else 32) * bbytes
        wq = np.zeros(N_W * row_bytes, np.uint8)
        base.ggml_quantize_chunk(ctypes.c_int(tid), ptr(w), ptr(wq), ctypes.c_int64(0), ctypes.c_int64(N_W),
                                 ctypes.c_int64(COLS), ctypes.c_void_p(0))
        wq = wq.reshape(N_W, row_bytes)
        act = ACT[tname]
        dot = getattr(cpu, f"ggml_vec_dot_{tname.lower().replace('_k', '_K')}_{act}")
        y = np.zeros((N_ACT, N_W), np.float32)
        for t in range(N_ACT):
            for r in range(N_W):
                s = np.zeros(1, np.float32)
                wr = np.ascontiguousarray(wq[r]); ar = np.ascontiguousarray(acts[act][t])
                dot(ctypes.c_int(COLS), ptr(s), ctypes.c_size_t(0), ptr(wr), ctypes.c_size_t(0), ptr(ar),
                    ctypes.c_size_t(0), ctypes.c_int(1))
                y[t, r] = s[0]
        out["types"][tname] = {"weights": wq.tobytes().hex(), "y": y.tobytes().hex(), "act": act}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
