#!/usr/bin/env python3
"""Writes tests/fixtures/quant/: rows quantized and dequantized by gguf-py (gguf.quants, the
numpy port of ggml's reference quantizers), which tests/test_quant.cpp compares with our
quantize_row / dequantize_row byte for byte and bit for bit.

Run with the reference environment (gguf 0.19.0):
    /root/.cache/billion/refenv/bin/python tools/make_quant_fixtures.py

For each type T it writes T.json (shape and which files exist), T.src.f32 (input rows, for
types gguf-py can quantize), T.q (the quantized rows) and T.deq.f32 (gguf-py's dequantization
of T.q). gguf-py has no K-quant quantizer, so K-quant rows are random blocks with finite scales.
All files are little-endian raw arrays.
"""
import json
from importlib import metadata
import pathlib
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from gguf.quants import quantize, dequantize

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "quant"
RNG = np.random.default_rng(20240611)

QUANTIZABLE = {"F32": Q.F32, "F16": Q.F16, "BF16": Q.BF16, "Q8_0": Q.Q8_0, "Q4_0": Q.Q4_0,
               "Q4_1": Q.Q4_1, "Q5_0": Q.Q5_0, "Q5_1": Q.Q5_1}
K_QUANTS = {"Q4_K": (Q.Q4_K, 144), "Q5_K": (Q.Q5_K, 176), "Q6_K": (Q.Q6_K, 210)}


def float_rows(cols: int) -> np.ndarray:
    """Rows that exercise the quantizers' corners: Gaussian, heavy-tailed, all zero, constant,
    exact rounding ties (x.5 after scaling), a lone negative extreme, tiny and large values."""
    rows = [RNG.standard_normal(cols), RNG.standard_t(3, cols) * 0.02, np.zeros(cols),
            np.full(cols, 0.37)]
    ties = np.arange(cols, dtype=np.float64) % 32 - 15.5   # halves for Q4_0 (max/-8 = 2)
    ties[::32] = -16.0
    rows.append(ties)
    ties8 = (np.arange(cols) % 32 - 16) + 0.5               # halves for Q8_0 once d = 1
    ties8[::32] = 127.0
    rows.append(ties8)
    neg = RNG.uniform(-1, 1, cols)
    neg[5] = -3.0
    rows.append(neg)
    rows.append(RNG.standard_normal(cols) * 1e-5)
    rows.append(RNG.standard_normal(cols) * 1e3)
    return np.stack(rows).astype(np.float32)


def special_floats(cols: int) -> np.ndarray:
    """F16/BF16 corner values: subnormals, overflow to inf, signed zeros, ties of the mantissa."""
    vals = np.array([0.0, -0.0, 1.0, -2.5, 65504.0, 65520.0, 1e6, -1e6, 6e-8, 3e-8, 1e-40,
                     np.inf, -np.inf, 1.0009765625 + 2**-11, 1 + 2**-8, 3.0e38], dtype=np.float32)
    row = np.resize(vals, cols).astype(np.float32)
    return row[None, :]


def write(name: str, meta: dict, arrays: dict) -> None:
    for suffix, arr in arrays.items():
        (OUT / f"{name}.{suffix}").write_bytes(np.ascontiguousarray(arr).tobytes())
    (OUT / f"{name}.json").write_text(json.dumps(meta, indent=1) + "\n")


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    cols = 96  # three 32-blocks per row
    for name, qt in QUANTIZABLE.items():
        src = float_rows(cols)
        if name in ("F16", "BF16"):
            src = np.concatenate([src, special_floats(cols)])
        q = quantize(src, qt)
        deq = dequantize(q, qt).astype(np.float32)
        write(name, {"type": name, "rows": src.shape[0], "cols": cols, "quantize": True,
                     "gguf": metadata.version("gguf")},
              {"src.f32": src, "q": q, "deq.f32": deq})

    cols = 512  # two super-blocks per row
    for name, (qt, block_bytes) in K_QUANTS.items():
        rows = 4
        n_blocks = rows * cols // 256
        blocks = RNG.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
        # Replace the fp16 scale fields with finite positive values (random bits could be NaN).
        scales = RNG.uniform(1e-4, 2e-2, size=(n_blocks, 2)).astype(np.float16).view(np.uint8)
        if name == "Q6_K":
            blocks[:, 208:210] = scales[:, 0:2]   # d is the last field
        else:
            blocks[:, 0:4] = scales               # d, dmin
        q = blocks.reshape(rows, -1)
        deq = dequantize(q, qt).astype(np.float32)
        write(name, {"type": name, "rows": rows, "cols": cols, "quantize": False},
              {"q": q, "deq.f32": deq})
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
