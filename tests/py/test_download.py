"""End-to-end tests of `billion download` against a local Hub stand-in (tests/py/hub_server.py).

Nothing here reaches the network beyond 127.0.0.1: HF_ENDPOINT points the downloader at the
stand-in. The interoperability tests use huggingface_hub (PyPI) when it is installed, in a
subprocess so its environment-dependent constants are read fresh. Keep the whole file < 1 min.
"""

import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from hub_server import FakeHub, Repo  # noqa: E402

BINARY = os.environ.get("BILLION_BINARY", "build/billion")
TOKEN = "hf_TestSecretToken1234567890abcdef"
BAD_TOKEN = "hf_BadSecretToken0987654321zyxwvu"
OTHER_TOKEN = "hf_OtherSecretToken5555555555aaaa"


def blob(seed: int, size: int) -> bytes:
    """Deterministic pseudo-random bytes (incompressible, distinct per seed)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(b"%d:%d" % (seed, counter)).digest()
        counter += 1
    return bytes(out[:size])


def model_files(seed=0, shard_size=300_000):
    return {
        "config.json": b'{"model_type": "llama", "hidden_size": 64}',
        "generation_config.json": b'{"do_sample": false}',
        "tokenizer.json": b'{"version": "1.0", "model": {"type": "BPE"}}' + b" " * (seed % 7),
        "tokenizer_config.json": b'{"bos_token": "<s>"}',
        "model.safetensors.index.json": b'{"weight_map": {"a": "model-00001-of-00002.safetensors"}}',
        "model-00001-of-00002.safetensors": blob(seed * 2 + 1, shard_size),
        "model-00002-of-00002.safetensors": blob(seed * 2 + 2, shard_size // 2),
        "README.md": b"# test model\n",
        "pytorch_model.bin": blob(99, 1000),
        "original/consolidated.00.pth": blob(98, 1000),
    }


LFS = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "pytorch_model.bin",
       "original/consolidated.00.pth"}
SELECTED = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
            "model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}


@pytest.fixture
def hub():
    server = FakeHub(page_size=4).start()
    server.valid_tokens = {TOKEN, OTHER_TOKEN}
    yield server
    server.stop()


@pytest.fixture
def env(tmp_path, hub):
    home = tmp_path / "hf_home"
    home.mkdir()
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(tmp_path / "cache"),
        "HF_ENDPOINT": hub.url,
        "HF_HUB_ETAG_TIMEOUT": "3",
        "HF_HUB_DOWNLOAD_TIMEOUT": "3",
        "BILLION_HUB_BACKOFF_MS": "20",
        "BILLION_PROGRESS_INTERVAL": "0.2",
    }


def run(env, *args, timeout=30):
    return subprocess.run([BINARY, "download", *args], env=env, capture_output=True, text=True, timeout=timeout)


def repo_dir(env, repo_id):
    return Path(env["HF_HUB_CACHE"]) / ("models--" + repo_id.replace("/", "--"))


def check_snapshot(env, repo):
    folder = repo_dir(env, repo.repo_id)
    assert (folder / "refs" / "main").read_text() == repo.commit
    snap = folder / "snapshots" / repo.commit
    names = {str(p.relative_to(snap)) for p in snap.rglob("*") if not p.is_dir()}
    assert names == SELECTED
    for name in SELECTED:
        link = snap / name
        assert link.is_symlink()
        target = os.readlink(link)
        assert not os.path.isabs(target) and target == "../../blobs/" + repo.etag(name)
        assert link.read_bytes() == repo.files[name]
    assert not list((folder / "blobs").glob("*.incomplete"))
    return snap


def content_gets(hub):
    return [r for r in hub.requests("GET") if "/resolve/" in r["path"] or r["path"].startswith("/cdn/")]


def have_huggingface_hub():
    try:
        import huggingface_hub  # noqa: F401
        return True
    except ImportError:
        return False


def python_hf(env, code, extra_env=None):
    e = dict(env, **(extra_env or {}))
    e.pop("BILLION_PROGRESS_INTERVAL", None)
    return subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True, timeout=60)


# --------------------------------------------------------------------------------------------

def test_full_download_then_nothing_to_do(hub, env):
    repo = hub.add_repo(Repo("org/tiny", model_files(), lfs=LFS))
    r = run(env, "org/tiny")
    assert r.returncode == 0, r.stderr
    snap = check_snapshot(env, repo)
    assert str(snap) in r.stdout
    assert not hub.requests(contains="pytorch_model.bin") and not hub.requests(contains="README.md")
    # The paginated tree listing was followed past the first page.
    assert any("cursor=" in q["query"] for q in hub.requests(contains="/tree/"))

    hub.clear_log()
    r = run(env, "org/tiny")
    assert r.returncode == 0, r.stderr
    assert content_gets(hub) == [] and hub.requests("HEAD") == []
    assert "0 to download" in r.stdout


def test_alias_and_include_and_dry_run(hub, env):
    hub.add_repo(Repo("HuggingFaceTB/SmolLM2-135M-Instruct", model_files(3), lfs=LFS))
    r = run(env, "smollm2-135m", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "model-00001-of-00002.safetensors" in r.stdout and "dry run" in r.stdout
    assert not Path(env["HF_HUB_CACHE"]).exists()
    r = run(env, "smollm2-135m", "--include", "*.json", "-q")
    assert r.returncode == 0, r.stderr
    snap = Path(r.stdout.strip())
    assert sorted(p.name for p in snap.iterdir()) == sorted(n for n in SELECTED if n.endswith(".json"))


def test_python_reads_our_cache_offline(hub, env):
    if not have_huggingface_hub():
        pytest.skip("huggingface_hub not installed (pip install huggingface_hub==2.4.0)")
    repo = hub.add_repo(Repo("org/interop", model_files(1), lfs=LFS))
    assert run(env, "org/interop").returncode == 0
    code = (
        "from huggingface_hub import snapshot_download, hf_hub_download, scan_cache_dir\n"
        "p = snapshot_download('org/interop')\n"
        "print(p)\n"
        "print(open(hf_hub_download('org/interop', 'config.json'), 'rb').read().decode())\n"
        "info = scan_cache_dir()\n"
        "assert not info.warnings, info.warnings\n"
        "print('repos', len(info.repos))\n"
    )
    r = python_hf(env, code, {"HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].endswith("snapshots/" + repo.commit)
    assert repo.files["config.json"].decode() in r.stdout and "repos 1" in r.stdout


def test_we_read_python_cache_without_downloading(hub, env):
    if not have_huggingface_hub():
        pytest.skip("huggingface_hub not installed (pip install huggingface_hub==2.4.0)")
    repo = hub.add_repo(Repo("org/frompy", model_files(2), lfs=LFS))
    code = "from huggingface_hub import snapshot_download\nprint(snapshot_download('org/frompy'))\n"
    r = python_hf(env, code, {"HF_HUB_DISABLE_XET": "1"})
    assert r.returncode == 0, r.stderr
    hub.clear_log()
    r = run(env, "org/frompy")
    assert r.returncode == 0, r.stderr
    assert content_gets(hub) == []
    assert "snapshots/" + repo.commit in r.stdout


def test_server_drops_connection_mid_file(hub, env):
    repo = hub.add_repo(Repo("org/drop", model_files(4), lfs=LFS))
    hub.fault("model-00001-of-00002.safetensors", drop_at=100_000)
    r = run(env, "org/drop")
    assert r.returncode == 0, r.stderr
    ranges = [q["headers"].get("range") for q in hub.requests("GET", "/cdn/")]
    assert "bytes=100000-" in ranges
    check_snapshot(env, repo)


def test_sigkill_then_resume(hub, env):
    repo = hub.add_repo(Repo("org/killed", model_files(5, shard_size=2_000_000), lfs=LFS))
    name = "model-00001-of-00002.safetensors"
    hub.fault(name, throttle=400_000)
    proc = subprocess.Popen([BINARY, "download", "org/killed"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    partial = repo_dir(env, "org/killed") / "blobs" / (repo.etag(name) + ".incomplete")
    deadline = time.time() + 15
    while time.time() < deadline and (not partial.exists() or partial.stat().st_size < 200_000):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    size = partial.stat().st_size
    assert 0 < size < len(repo.files[name])
    hub.clear_faults()
    hub.clear_log()
    r = run(env, "org/killed")
    assert r.returncode == 0, r.stderr
    ranges = [q["headers"].get("range") for q in hub.requests("GET", "/cdn/") if name in q["query"]]
    assert ranges == ["bytes=%d-" % size]
    check_snapshot(env, repo)


def test_server_ignores_range_restarts_cleanly(hub, env):
    repo = hub.add_repo(Repo("org/norange", model_files(6), lfs=LFS))
    name = "model-00001-of-00002.safetensors"
    blobs = repo_dir(env, "org/norange") / "blobs"
    blobs.mkdir(parents=True)
    (blobs / (repo.etag(name) + ".incomplete")).write_bytes(repo.files[name][:5000])
    hub.fault(name, ignore_range=True)
    r = run(env, "org/norange")
    assert r.returncode == 0, r.stderr
    check_snapshot(env, repo)


def test_corrupted_body_is_rejected(hub, env):
    repo = hub.add_repo(Repo("org/corrupt", model_files(7), lfs=LFS))
    name = "model-00002-of-00002.safetensors"
    hub.fault(name, corrupt=True)
    r = run(env, "org/corrupt")
    assert r.returncode == 7, r.stderr
    assert "sha256 mismatch" in r.stderr and name in r.stderr
    folder = repo_dir(env, "org/corrupt")
    assert not (folder / "snapshots" / repo.commit / name).exists()
    assert not (folder / "blobs" / repo.etag(name)).exists()
    assert not list((folder / "blobs").glob("*.incomplete"))
    assert not (folder / "refs" / "main").exists()
    hub.clear_faults()
    assert run(env, "org/corrupt").returncode == 0
    check_snapshot(env, repo)


def test_transient_errors_are_retried(hub, env):
    repo = hub.add_repo(Repo("org/flaky", model_files(8), lfs=LFS))
    hub.fault("model-00001-of-00002.safetensors", cdn_status=[500, 503])
    hub.fault("config.json", head_status=[500], resolve_status=[429])
    r = run(env, "org/flaky")
    assert r.returncode == 0, r.stderr
    assert "retrying" in r.stdout
    check_snapshot(env, repo)


def test_missing_repo_and_missing_file(hub, env):
    r = run(env, "org/nothere")
    assert r.returncode == 5
    assert "org/nothere" in r.stderr and "not found" in r.stderr
    hub.add_repo(Repo("org/gap", model_files(9), lfs=LFS))
    hub.fault("tokenizer.json", missing=True)
    r = run(env, "org/gap")
    assert r.returncode == 5
    assert "tokenizer.json" in r.stderr and "not found" in r.stderr
    r = run(env, "org/gap", "--revision", "v9")
    assert r.returncode == 5 and "v9" in r.stderr


def test_gated_repo_messages_and_token_secrecy(hub, env):
    hub.add_repo(Repo("meta-llama/Llama-3.2-1B-Instruct", model_files(10), lfs=LFS, gated=True,
                      allowed_tokens={TOKEN}))
    outputs = []
    r = run(env, "llama3.2-1b")  # no token at all
    outputs.append(r)
    assert r.returncode == 3, r.stderr
    assert "meta-llama/Llama-3.2-1B-Instruct" in r.stderr and "licence" in r.stderr and "--token" in r.stderr
    assert "HF_TOKEN" in r.stderr

    r = run(env, "llama3.2-1b", "--token", BAD_TOKEN)
    outputs.append(r)
    assert r.returncode == 4, r.stderr
    assert "rejected" in r.stderr and "--token" in r.stderr

    r = run(dict(env, HF_TOKEN=OTHER_TOKEN), "llama3.2-1b")  # valid token, licence not accepted
    outputs.append(r)
    assert r.returncode == 3, r.stderr
    assert "no access" in r.stderr and "HF_TOKEN" in r.stderr

    Path(env["HF_HOME"], "token").write_text(TOKEN + "\n")  # the token file
    r = run(env, "llama3.2-1b")
    outputs.append(r)
    assert r.returncode == 0, r.stderr
    for out in outputs:
        for secret in (TOKEN, BAD_TOKEN, OTHER_TOKEN):
            assert secret not in out.stdout and secret not in out.stderr
    heads = hub.requests("HEAD", "/resolve/")
    assert any(h["headers"].get("authorization") == "Bearer " + TOKEN for h in heads)
    cdn = hub.requests("GET", "/cdn/")
    assert cdn and all("authorization" not in q["headers"] for q in cdn)  # never sent to the CDN host


def test_not_enough_disk_space(hub, env, tmp_path):
    hub.add_repo(Repo("org/huge", model_files(11, shard_size=6_000_000), lfs=LFS))
    mount = tmp_path / "small"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                             capture_output=True).returncode == 0
    e = dict(env, HF_HUB_CACHE=str(mount / "cache"))
    if not mounted:
        e["BILLION_TEST_FREE_BYTES"] = str(4 << 20)
    try:
        r = run(e, "org/huge")
        assert r.returncode == 6, r.stderr
        assert "not enough disk space" in r.stderr and "needs" in r.stderr and "free" in r.stderr
        assert list(mount.iterdir()) == []
        assert content_gets(hub) == []
    finally:
        if mounted:
            subprocess.run(["umount", str(mount)])


def test_progress_lines_when_not_a_terminal(hub, env):
    repo = hub.add_repo(Repo("org/progress", model_files(12, shard_size=600_000), lfs=LFS))
    hub.fault("model-00001-of-00002.safetensors", throttle=1_000_000)
    r = run(env, "org/progress")
    assert r.returncode == 0, r.stderr
    assert "\x1b[" not in r.stdout
    assert "model-00001-of-00002.safetensors: downloading" in r.stdout
    assert "model-00001-of-00002.safetensors: done" in r.stdout and "sha256 ok" in r.stdout
    assert "progress:" in r.stdout and "ETA" in r.stdout
    check_snapshot(env, repo)
    hub.clear_faults()
    r = run(env, "org/progress", "--quiet")
    assert r.returncode == 0 and r.stdout.strip().endswith(repo.commit)


def test_bad_server_answers_fail_cleanly(hub, env):
    hub.add_repo(Repo("org/badjson", model_files(13), lfs=LFS))
    hub.api_faults["org/badjson"] = "malformed_json"
    r = run(env, "org/badjson")
    assert r.returncode == 8 and "not valid JSON" in r.stderr

    hub.add_repo(Repo("org/loop", model_files(14), lfs=LFS))
    hub.fault("model-00001-of-00002.safetensors", redirect_loop=True)
    r = run(env, "org/loop")
    assert r.returncode == 8 and "redirect" in r.stderr and "org/loop: model-00001" in r.stderr

    hub.clear_faults()
    hub.add_repo(Repo("org/liar", model_files(15), lfs=LFS))
    hub.fault("model-00002-of-00002.safetensors", lie_length=1000, hang_s=20)
    start = time.time()
    r = run(env, "org/liar")
    assert r.returncode == 8, r.stderr
    assert "org/liar: model-00002-of-00002.safetensors" in r.stderr and "announced" in r.stderr
    assert time.time() - start < 10

    # A server that goes silent mid-body: the stall timeout ends each try, then the retries.
    hub.clear_faults()
    hub.add_repo(Repo("org/silent", model_files(17), lfs=LFS))
    hub.fault("model-00002-of-00002.safetensors", stall_at=1000, hang_s=20)
    start = time.time()
    r = run(dict(env, BILLION_HUB_RETRIES="1", HF_HUB_DOWNLOAD_TIMEOUT="1"), "org/silent")
    assert r.returncode == 8, r.stderr
    assert "timed out" in r.stderr and "model-00002-of-00002.safetensors" in r.stderr
    assert time.time() - start < 15


def test_pickle_only_repo(hub, env):
    hub.add_repo(Repo("org/pickled", {"config.json": b"{}", "pytorch_model.bin": blob(1, 100)},
                      lfs={"pytorch_model.bin"}))
    r = run(env, "org/pickled")
    assert r.returncode == 1 and "pickle" in r.stderr and "org/pickled" in r.stderr


def test_offline_mode(hub, env):
    repo = hub.add_repo(Repo("org/off", model_files(16), lfs=LFS))
    r = run(dict(env, HF_HUB_OFFLINE="1"), "org/off")
    assert r.returncode == 9 and "HF_HUB_OFFLINE" in r.stderr
    assert run(env, "org/off").returncode == 0
    hub.clear_log()
    r = run(dict(env, HF_HUB_OFFLINE="1"), "org/off")
    assert r.returncode == 0 and repo.commit in r.stdout
    assert hub.requests() == []
