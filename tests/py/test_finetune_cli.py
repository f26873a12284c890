"""End-to-end checks of `billion finetune` (issue #7) through the binary, on the tiny random
TinyLlama of tests/fixtures/engine/tinyllama/f32 (2 layers, hidden 64, a byte-level tokenizer):

* resuming: a 2-epoch run interrupted after its epoch-1 checkpoint and continued with --resume
  ends with the same adapter, bit for bit, as the same run left uninterrupted;
* bad input (#7's acceptance): a malformed data file, an empty sample, samples longer than
  --max-len (truncated, with the count in the log and summary.json), an adapter whose base model
  does not match, a checkpoint of another configuration: clear errors naming the file, no crash.

The interruption is made deterministic by deleting what epoch 2 wrote (its checkpoint and the
final adapter) from a finished run: the folder is then exactly what a run killed at any moment
of epoch 2 leaves behind, since files are written only at the end of an epoch. (A real kill races
with a tiny model's epoch, which takes milliseconds.) Bitwise equality holds because nothing of
the training state is lost at a checkpoint: the adapter and AdamW moments are saved as F32, the
step counter is saved, the shuffle order is a function of (seed, epoch), and LoRA dropout masks
are a function of (seed, training micro-batch index, layer, projection).
"""
import json
import os
import shutil
import subprocess

import pytest

BINARY = os.environ.get("BILLION_BINARY", "build/billion")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = os.path.join(ROOT, "tests", "fixtures", "engine", "tinyllama", "f32")
LLAMA_ADAPTER = os.path.join(ROOT, "tests", "fixtures", "lora", "llama", "adapter_final")


def run(*args):
    return subprocess.run([BINARY, *map(str, args)], capture_output=True, text=True, timeout=600)


def assert_clean_error(r, *needles):
    # A billion::Error exits with status 1; a crash would be a negative status (signal).
    assert r.returncode == 1, f"status {r.returncode}\n{r.stderr}"
    assert "error:" in r.stderr
    for n in needles:
        assert n in r.stderr, f"{n!r} not in:\n{r.stderr}"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny TinyLlama with a 1,024-token context (the fixture's 128 positions cannot hold the
    Alpaca template; rotary positions do not depend on the limit, so the weights are unchanged) and
    a tokenizer_config.json naming its end-of-sequence token."""
    d = tmp_path_factory.mktemp("tiny")
    for f in os.listdir(TINY):
        shutil.copy(os.path.join(TINY, f), d / f)
    cfg = json.loads((d / "config.json").read_text())
    cfg["max_position_embeddings"] = 1024
    (d / "config.json").write_text(json.dumps(cfg))
    # The end-of-sequence token every response ends with (id 258 in config.json).
    (d / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>"}))
    return d


def write_data(path, entries):
    path.write_text(json.dumps(entries))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    entries = [{"instruction": f"Add {i} and {i + 3}.", "input": "" if i % 2 else f"numbers {i}, {i + 3}",
                "output": f"The sum is {2 * i + 3}."} for i in range(12)]
    return write_data(tmp_path_factory.mktemp("data") / "train.json", entries)


COMMON = ["--samples", 8, "--eval-samples", 2, "--batch", 2, "--grad-accum", 2, "--lr", "1e-2", "--compare", 0,
          "--log-every", 1, "--threads", 2, "--seed", 7]


def finetune(tiny, data, out, *extra, rank=4):
    return run("finetune", "--model", tiny, "--data", data, "--out", out, *COMMON, "--rank", rank, *extra)


def tensor_bytes(path):
    """name -> (dtype, shape, raw bytes) of a safetensors file (format: u64 header length, JSON header, data)."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    body = raw[8 + n:]
    return {k: (v["dtype"], v["shape"], body[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in header.items() if k != "__metadata__"}


def test_resume_after_interruption_gives_the_same_adapter(tiny, data, tmp_path):
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    r = finetune(tiny, data, full, "--epochs", 2)
    assert r.returncode == 0, r.stderr
    r = finetune(tiny, data, resumed, "--epochs", 2)
    assert r.returncode == 0, r.stderr
    # Interrupt after epoch 1: remove everything epoch 2 and the end of the run wrote.
    shutil.rmtree(resumed / "checkpoint-epoch-2")
    for f in ("adapter_model.safetensors", "adapter_config.json", "summary.json"):
        (resumed / f).unlink()
    r = finetune(tiny, data, resumed, "--epochs", 2, "--resume")
    assert r.returncode == 0, r.stderr
    assert "resuming from" in r.stderr and "checkpoint-epoch-1" in r.stderr, r.stderr
    summary = json.loads((resumed / "summary.json").read_text())
    assert summary["resumed_from"].endswith("checkpoint-epoch-1")
    assert summary["peak_rss_bytes"] > 1 << 20  # core/process_memory read VmHWM (a process is > 1 MiB)

    want = tensor_bytes(full / "adapter_model.safetensors")
    got = tensor_bytes(resumed / "adapter_model.safetensors")
    assert want.keys() == got.keys() and len(want) == 8  # lora_A and lora_B of q_proj and v_proj in 2 layers
    for name in want:
        assert got[name] == want[name], f"{name} differs after resuming"
    # The adapter trained (B starts at zero), so equality is not trivial.
    assert any(any(b != 0 for b in v[2]) for k, v in want.items() if "lora_B" in k)
    # The optimizer state of the final checkpoint agrees too, and so do the epoch-2 losses.
    assert (tensor_bytes(full / "checkpoint-epoch-2" / "optimizer.safetensors") ==
            tensor_bytes(resumed / "checkpoint-epoch-2" / "optimizer.safetensors"))
    log_full = [json.loads(l) for l in (full / "train_log.jsonl").read_text().splitlines()]
    log_resumed = [json.loads(l) for l in (resumed / "train_log.jsonl").read_text().splitlines()]
    assert [l["loss"] for l in log_full if l["epoch"] > 1] == [l["loss"] for l in log_resumed[-2:]]


def test_resume_with_another_configuration_is_an_error(tiny, data, tmp_path):
    out = tmp_path / "run"
    assert finetune(tiny, data, out, "--epochs", 1).returncode == 0
    r = finetune(tiny, data, out, "--epochs", 2, "--resume", rank=2)
    assert_clean_error(r, "checkpoint-epoch-1", "does not match this run")


def test_malformed_data_file_is_a_clear_error(tiny, tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('[{"instruction": ')
    assert_clean_error(finetune(tiny, bad, tmp_path / "out", "--epochs", 1), "broken.json", "not valid JSON")
    obj = write_data(tmp_path / "object.json", {"instruction": "x", "output": "y"})
    assert_clean_error(finetune(tiny, obj, tmp_path / "out", "--epochs", 1), "object.json", "JSON list")


def test_empty_sample_is_a_clear_error(tiny, tmp_path):
    entries = [{"instruction": "Say hi", "input": "", "output": "hi"}] * 11
    entries.insert(3, {"instruction": "", "input": "", "output": ""})
    bad = write_data(tmp_path / "empty.json", entries)
    assert_clean_error(finetune(tiny, bad, tmp_path / "out", "--epochs", 1), "empty.json", "entry 3 is empty")


def test_long_samples_are_truncated_and_counted(tiny, tmp_path):
    # Three of the eight training samples have a response of ~600 bytes, far past --max-len 160
    # (the prompt template alone is ~100 tokens with this small byte-level vocabulary).
    entries = [{"instruction": f"Count to {i}.", "input": "",
                "output": ("one two three four five six seven eight nine ten " * 12) if i in (1, 4, 6) else f"{i}."}
               for i in range(10)]
    d = write_data(tmp_path / "long.json", entries)
    out = tmp_path / "out"
    r = finetune(tiny, d, out, "--epochs", 1, "--max-len", 160)
    assert r.returncode == 0, r.stderr
    assert "3 longer than --max-len 160 were truncated" in r.stderr, r.stderr
    assert json.loads((out / "summary.json").read_text())["truncated_samples"] == 3
    # Too short for even the prompt: nothing left to learn from, a clear error.
    assert_clean_error(finetune(tiny, d, tmp_path / "out2", "--epochs", 1, "--max-len", 8), "long.json", "no training sample")


def test_adapter_of_another_base_is_a_clear_error(tiny, data, tmp_path):
    # The tiny Llama adapter of tests/fixtures/lora (hidden 32) on this model (hidden 64).
    r = run("generate", "--model", tiny, "--lora", LLAMA_ADAPTER, "--prompt", "hi", "-n", 2)
    assert_clean_error(r, "adapter_final")
    # Our own adapter works on its base.
    out = tmp_path / "ok"
    assert finetune(tiny, data, out, "--epochs", 1).returncode == 0
    r = run("generate", "--model", tiny, "--lora", out, "--prompt", "Add 1 and 4.", "-n", 4, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["generated_tokens"] >= 1
