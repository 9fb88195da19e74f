"""``moescale train`` through the real entry point: JSON keys, table, exit status 2 on errors."""

from __future__ import annotations

import json

import pytest

from conftest import needs_torch
from moescale import cli


@pytest.fixture
def run(monkeypatch, capsys, tmp_path):
    """Call ``moescale.cli.main`` with ``train`` registered; return (exit code, out, err)."""
    monkeypatch.setitem(cli.COMMANDS, "train", "moescale.cli.train:train")
    monkeypatch.setenv("MOESCALE_CACHE", str(tmp_path / "cache"))

    def invoke(*args: str) -> tuple[int, str, str]:
        code = 0
        try:
            cli.main(list(args))
        except SystemExit as exc:
            code = exc.code or 0
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return invoke


@needs_torch
def test_json_output_has_the_documented_keys(run, tmp_path):
    code, out, _ = run("train", "--preset", "tiny", "--tokens", "4096", "--batch-tokens", "1024",
                       "--seq-len", "64", "--out", str(tmp_path / "r"), "--json")
    assert code == 0
    data = json.loads(out)
    for key in ("train_loss", "eval_loss", "initial_eval_loss", "tokens", "flops",
                "tokens_per_second", "vocab_size"):
        assert key in data, key
    assert data["tokens"] == 4096 and data["vocab_size"] == 256
    assert (tmp_path / "r" / "log.jsonl").is_file()


@needs_torch
def test_table_output(run, tmp_path):
    # --threads beyond the CPUs is capped with a note (an audit saw 1000 threads hang)
    code, out, err = run("train", "--preset", "tiny", "--tokens", "2048", "--batch-tokens",
                         "1024", "--seq-len", "64", "--out", str(tmp_path / "t"),
                         "--threads", "1000")
    assert code == 0
    assert "eval loss" in out and "tokens/s" in out
    assert "--threads 1000 is more than the" in err


@needs_torch
def test_arch_json_and_plan_json(run, tmp_path):
    from moescale.accounting.presets import get_preset

    arch = get_preset("tiny").to_dict()
    (tmp_path / "plan.json").write_text(json.dumps({"architecture": arch, "loss": 3.0}))
    code, out, err = run("train", "--plan", str(tmp_path / "plan.json"), "--tokens", "1024",
                         "--batch-tokens", "1024", "--seq-len", "32", "--out",
                         str(tmp_path / "p"), "--json")
    assert code == 0, err
    assert json.loads(out)["steps"] == 1


@pytest.mark.parametrize("args, message", [
    (["--preset", "tiny", "--tokens", "0"], "--tokens must be positive"),
    (["--arch", "missing.json", "--tokens", "1e5"], "not found"),
    (["--tokens", "1e5"], "no architecture given"),
    (["--preset", "tiny", "--arch", "a.json", "--tokens", "1e5"], "give only one of --preset, --arch"),
    (["--preset", "huge", "--tokens", "1e5"], "unknown preset"),
    pytest.param(["--preset", "tiny", "--tokens", "1e5", "--resume"], "--resume needs --out",
                 marks=needs_torch),
    pytest.param(["--preset", "tiny", "--tokens", "1e5", "--data", "nowhere.txt"],
                 "data not found", marks=needs_torch),
    pytest.param(["--preset", "tiny", "--tokens", "10"], "less than one batch",
                 marks=needs_torch),
])
def test_user_errors_exit_2_with_one_line(run, tmp_path, args, message):
    code, _, err = run("train", *args, "--out", str(tmp_path / "e")) if "--resume" not in args \
        else run("train", *args)
    assert code == 2
    assert err.startswith("Error:") and message in err
    assert err.count("\n") == 1


@needs_torch
def test_unsupported_architecture_is_a_user_error(run, tmp_path):
    from moescale.accounting.presets import get_preset

    arch = get_preset("tiny").replace(attention_sinks=True)
    (tmp_path / "a.json").write_text(json.dumps(arch.to_dict()))
    code, _, err = run("train", "--arch", str(tmp_path / "a.json"), "--tokens", "1e5",
                       "--out", str(tmp_path / "u"))
    assert code == 2 and "attention_sinks" in err


def test_without_torch_train_is_one_error_naming_the_extra():
    """A missing optional dependency is one line naming the extra that installs it."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"
            "from moescale.cli import main\n"
            "main(['train', '--preset', 'tiny', '--tokens', '1e5'])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("Error: this command needs torch, which is not installed: "
                                   "pip install 'moescale[train]'")
