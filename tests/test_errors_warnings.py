"""The README's example commands for count, laws, fit, predict and train write no Python
warning (numpy RuntimeWarning or any other) to stderr, with or without --json."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from conftest import run_cli


def _write_runs(folder) -> None:
    """runs.csv with the README's column names (Chinchilla-like) and curves.csv (Clark-like)."""
    rng = np.random.default_rng(1)
    n = np.geomspace(4e7, 1.6e10, 40)
    d = np.geomspace(5e9, 5e11, 40)[rng.permutation(40)]
    loss = (1.82 + 482 / n**0.348 + 2085 / d**0.366) * np.exp(rng.normal(0, 0.01, 40))
    lines = ["Model Size,Training FLOP,loss"]
    lines += [f"{float(a)!r},{float(6 * a * b)!r},{float(c)!r}" for a, b, c in zip(n, d, loss, strict=True)]
    (folder / "runs.csv").write_text("\n".join(lines) + "\n")
    rows = ["step,k,dense_parameter_count,num_experts,loss_validation"]
    for size in np.geomspace(1.5e7, 1.3e9, 6):
        for e in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512):
            le = np.log(1 / (1 / (e - 1 + 1 / (1 / 1.9 - 1 / 300)) + 1 / 300))
            value = np.exp(-0.07 * np.log(size) - 0.04 * le + 0.002 * np.log(size) * le + 2.3
                           + rng.normal(0, 0.005))
            for step in (100000, 249000):
                for k in (1, 2):
                    rows.append(f"{step},{k},{float(size)!r},{e},{float(value)!r}")
    (folder / "curves.csv").write_text("\n".join(rows) + "\n")
    # the fit the README's `predict --fit fit.json` reads (the README's own fit command makes it
    # too; written here so the predict commands do not depend on the order tests run in)
    import moescale

    runs = moescale.RunTable.from_file(folder / "runs.csv",
                                       mapping={"Model Size": "N", "Training FLOP": "C"})
    moescale.fit("chinchilla", runs, holdout="largest-C:5", bootstrap=50).save(folder / "fit.json")


README_COMMANDS = [
    "count --preset mixtral-8x7b",
    "count --preset mixtral-8x7b --convention megatron --json",
    "count --hidden-size 1024 --layers 12 --heads 16 --experts 64 --top-k 8 --expert-ffn 512 "
    "--dense-ffn 3072 --dense-layers 1",
    "laws",
    "laws --json",
    "fit runs.csv --law chinchilla --map Model_Size=N --map Training_FLOP=C --holdout largest-C:5 "
    "--bootstrap 200 -o fit.json",
    "fit curves.csv --law clark2022 --where step_==_249000_and_k_==_1 "
    "--map dense_parameter_count=N --map num_experts=E --map loss_validation=loss "
    "--holdout largest-N:1",
    "fit curves.csv --law clark2022 --where step_==_249000_and_k_==_1 "
    "--map dense_parameter_count=N --map num_experts=E --map loss_validation=loss --json",
    "predict --law ludziejewski2025 --N-active 1e9 --D 2e10 --E 8",
    "predict --law ludziejewski2025 --N-active 1e9 --D 2e10 --E 8 --json",
    "predict --law chinchilla --preset hoffmann2022 --N 7e9 --D 1.4e11",
    "predict --fit fit.json --N 1e9 --D 1e11",
    "predict --fit fit.json --N 1e9 --D 1e11 --json",
]


def _argv(command: str) -> list[str]:
    """Split on spaces; '_' inside an argument stands for a space (Model Size, --where)."""
    return [a.replace("_==_", " == ").replace("_and_", " and ").replace("Model_Size", "Model Size")
            .replace("Training_FLOP", "Training FLOP") for a in command.split()]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("readme")
    _write_runs(path)
    return path


@pytest.mark.parametrize("command", README_COMMANDS, ids=[c[:50] for c in README_COMMANDS])
def test_readme_commands_write_no_warning(folder, monkeypatch, capsys, command):
    monkeypatch.chdir(folder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = run_cli(_argv(command), capsys)
    assert code == 0, err
    assert "Warning" not in err and "warn" not in err.lower(), err
    assert not caught, [f"{w.category.__name__}: {w.message}" for w in caught]
    if "--json" in command:
        json.loads(out)


def test_readme_train_example_writes_no_warning(tmp_path, monkeypatch, capsys):
    """`moescale train --preset tiny --tokens 2e6 --out runs/tiny --json`, with fewer tokens."""
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MOESCALE_CACHE", str(tmp_path / "cache"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = run_cli(["train", "--preset", "tiny", "--tokens", "8192",
                                  "--batch-tokens", "1024", "--seq-len", "64", "--threads", "1",
                                  "--out", "runs/tiny", "--json"], capsys)
    assert code == 0, err
    assert "Warning" not in err, err
    assert not caught, [f"{w.category.__name__}: {w.message}" for w in caught]
    assert json.loads(out)["tokens"] == 8192
