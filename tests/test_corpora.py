"""Real corpora and real tokenizers: Parquet, JSON Lines, saved datasets, token files,
tokenizer.json files, `moescale data prepare`, and one clear error for each kind of bad input.

Every fixture is made here (no network): documents are KJV verses, the tokenizer a small BPE
trained by the `tokenizers` library in the test session.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
tokenizers = pytest.importorskip("tokenizers")

from conftest import needs_torch  # noqa: E402
from moescale import cli  # noqa: E402
from moescale.errors import MoescaleError  # noqa: E402
from moescale.training import corpora  # noqa: E402
from moescale.training.data import WindowSampler, kjv_text  # noqa: E402
from moescale.training.tokenization import file_sha256  # noqa: E402

TINY = ["--preset", "tiny", "--seq-len", "32", "--batch-tokens", "256", "--tokens", "768",
        "--threads", "1", "--json"]


# ----- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def docs() -> list[str]:
    """About 1,500 documents (groups of ten verses) of varied length."""
    lines = kjv_text().splitlines()[:15_000]
    return ["\n".join(lines[i:i + 10]) for i in range(0, len(lines), 10)]


@pytest.fixture(scope="module")
def files(tmp_path_factory, docs):
    """The same documents as Parquet, JSON Lines and a saved dataset, and a tokenizer.json."""
    root = tmp_path_factory.mktemp("corpora")
    table = pa.table({"id": list(range(len(docs))), "text": docs})
    pq.write_table(table, root / "docs.parquet", row_group_size=200)
    with open(root / "docs.jsonl", "w") as f:
        for i, d in enumerate(docs):
            f.write(json.dumps({"id": i, "body": d}) + "\n")
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"text": docs}).save_to_disk(str(root / "saved"))
    (root / "tok").mkdir()
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(docs[:300], trainer=trainer)
    tok.save(str(root / "tok" / "tokenizer.json"))
    return root


@pytest.fixture
def run(monkeypatch, capsys, tmp_path):
    """``moescale …`` through the real entry point: (exit code, stdout, stderr)."""
    monkeypatch.setitem(cli.COMMANDS, "train", "moescale.cli.train:train")
    monkeypatch.setitem(cli.COMMANDS, "data", "moescale.cli.data:data")
    monkeypatch.setenv("MOESCALE_CACHE", str(tmp_path / "cache"))

    def invoke(*args: str) -> tuple[int, str, str]:
        code = 0
        try:
            cli.main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code or 0
        out = capsys.readouterr()
        return code, out.out, out.err
    return invoke


def _one_line_error(code: int, err: str, message: str) -> None:
    assert code == 2, err
    assert err.startswith("Error:") and message in err, err
    assert err.count("\n") == 1, err


# ----- sources ----------------------------------------------------------------------------------
def test_parquet_jsonl_and_saved_dataset_give_the_same_tokens(files, tmp_path, docs):
    tok = files / "tok" / "tokenizer.json"
    made = {name: corpora.prepare(files / src, tmp_path / name, tokenizer=str(tok), **kw)
            for name, src, kw in (("pq", "docs.parquet", {}),
                                  ("jl", "docs.jsonl", {"text_column": "body"}),
                                  ("ds", "saved", {}))}
    assert len({m["source"]["sha256"] for m in made.values()}) == 1  # the text, not the format
    assert {m["source"]["documents"] for m in made.values()} == {len(docs)}
    train = {k: np.fromfile(tmp_path / k / "train.bin", dtype=np.uint16) for k in made}
    assert np.array_equal(train["pq"], train["jl"]) and np.array_equal(train["pq"], train["ds"])
    m = made["pq"]
    assert m["tokenizer"]["sha256"] == file_sha256(tok)
    assert m["tokenizer"]["vocab_size"] == 400 and m["tokenizer"]["eos_token"] == "<|endoftext|>"
    n = m["tokens"]
    assert n["train"] + n["validation"] == n["total"] and n["validation"] == int(0.05 * n["total"])
    # documents are joined by the end-of-text id; decoding gives the first document back
    c = corpora.open_corpus(str(tmp_path / "pq"))
    eos = c.tokenizer.eos_id
    first = np.asarray(c.train[:np.flatnonzero(np.asarray(c.train[:5000]) == eos)[0]])
    assert c.tokenizer.decode(first) == docs[0]
    assert int((np.asarray(c.train) == eos).sum() + (np.asarray(c.val) == eos).sum()) == len(docs) - 1
    assert c.vocab_size == 400 and c.info["corpus"] == m["corpus"]


def test_text_sources_and_bpe_are_cached_once(tmp_path, docs):
    (tmp_path / "texts").mkdir()
    for i in range(3):
        (tmp_path / "texts" / f"{i}.txt").write_text("\n".join(docs[i * 100:(i + 1) * 100]))
    a = corpora.open_corpus(str(tmp_path / "texts"), cache_dir=tmp_path / "c")
    b = corpora.open_corpus(str(tmp_path / "texts"), cache_dir=tmp_path / "c")
    assert a.info == b.info and len(list((tmp_path / "c" / "corpora").iterdir())) == 1
    text = "\n\n".join((tmp_path / "texts" / f"{i}.txt").read_text() for i in range(3))
    assert np.array_equal(np.concatenate([a.train, a.val]),
                          np.frombuffer(text.encode(), dtype=np.uint8))
    bpe = corpora.open_corpus(str(tmp_path / "texts"), "bpe", 300, cache_dir=tmp_path / "c")
    assert bpe.vocab_size == 300 and bpe.tokenizer.kind == "bpe"
    assert bpe.tokenizer.decode(bpe.train[:200]) == text[:len(bpe.tokenizer.decode(bpe.train[:200]))]


# ----- data prepare and train, end to end --------------------------------------------------------
@needs_torch
def test_data_prepare_then_train_records_corpus_and_tokenizer(run, files, tmp_path):
    out = tmp_path / "prepared"
    code, stdout, err = run("data", "prepare", files / "docs.parquet", "--tokenizer",
                            files / "tok", "-o", out, "--json", "--threads", "1")
    assert code == 0, err
    manifest = json.loads(stdout)
    assert manifest == {**json.loads((out / "manifest.json").read_text()), "out": str(out)}
    assert {p.name for p in out.iterdir()} == {"train.bin", "val.bin", "manifest.json",
                                               "tokenizer.json"}
    code, stdout, err = run("train", *TINY, "--data", out, "--out", tmp_path / "r")
    assert code == 0, err
    result = json.loads(stdout)
    assert result["vocab_size"] == 400  # the model's vocabulary follows the tokenizer
    assert result["corpus"] == manifest["corpus"] and result["tokenizer"].startswith("tok@")
    assert result["corpus_tokens"] == manifest["tokens"]["train"]
    assert result["tokenizer_sha256"] == manifest["tokenizer"]["sha256"]
    data = json.loads((tmp_path / "r" / "run.json").read_text())["data"]
    assert data["corpus_sha256"] == manifest["source"]["sha256"] and data["folder"] == str(out.resolve())
    # the same tokenizer given explicitly is accepted; the model vocabulary may pad it
    code, stdout, err = run("train", *TINY, "--data", out, "--tokenizer", files / "tok",
                            "--vocab-size", "512", "--out", tmp_path / "r2")
    assert code == 0, err
    assert json.loads(stdout)["vocab_size"] == 512


def test_prepare_help_has_an_example(run):
    code, out, _ = run("data", "prepare", "--help")
    assert code == 0 and "Examples:" in out and "moescale data prepare kjv" in out


@needs_torch
def test_trained_bpe_is_saved_next_to_the_run_and_reusable(run, tmp_path, docs):
    (tmp_path / "t.txt").write_text("\n".join(docs[:400]))
    code, out, err = run("train", *TINY, "--data", tmp_path / "t.txt", "--tokenizer", "bpe",
                         "--vocab-size", "300", "--out", tmp_path / "a")
    assert code == 0, err
    first = json.loads(out)
    assert (tmp_path / "a" / "tokenizer.json").is_file() and first["tokenizer"].startswith("bpe300@")
    code, out, err = run("train", *TINY, "--data", tmp_path / "t.txt", "--tokenizer",
                         tmp_path / "a" / "tokenizer.json", "--out", tmp_path / "b")
    assert code == 0, err
    again = json.loads(out)
    assert again["tokenizer_sha256"] == first["tokenizer_sha256"]
    assert again["corpus"] == first["corpus"] and again["vocab_size"] == 300


@needs_torch
def test_train_on_token_files_bin_and_npy(run, tmp_path):
    ids = np.random.default_rng(0).integers(0, 1000, 20_000)
    ids.astype(np.uint16).tofile(tmp_path / "t.bin")
    np.save(tmp_path / "t.npy", ids.astype(np.int32))
    for name in ("t.bin", "t.npy"):
        code, out, err = run("train", *TINY, "--data", tmp_path / name, "--vocab-size", "1024",
                             "--out", tmp_path / f"r-{name}")
        assert code == 0, err
        result = json.loads(out)
        assert result["vocab_size"] == 1024 and result["corpus_tokens"] == 19_000
    assert json.loads(out)["corpus"].startswith("t.npy@")


# ----- one clear line for each kind of bad input -------------------------------------------------
@needs_torch
def test_vocabulary_mismatch_is_one_error(run, files, tmp_path):
    out = tmp_path / "p"
    corpora.prepare(files / "docs.parquet", out, tokenizer=str(files / "tok"))
    code, _, err = run("train", *TINY, "--data", out, "--vocab-size", "300", "--out", tmp_path / "r")
    _one_line_error(code, err, "smaller than the vocabulary of the tokenizer")
    other = tmp_path / "other.json"
    other.write_text((files / "tok" / "tokenizer.json").read_text().replace("<|endoftext|>", "<eot>"))
    code, _, err = run("train", *TINY, "--data", out, "--tokenizer", other, "--out", tmp_path / "r")
    _one_line_error(code, err, "is not the tokenizer")


@needs_torch
def test_missing_column_is_one_error(run, files, tmp_path):
    code, _, err = run("data", "prepare", files / "docs.parquet", "--text-column", "body",
                       "-o", tmp_path / "x")
    _one_line_error(code, err, "has no column 'body' (it has id, text)")
    code, _, err = run("data", "prepare", files / "docs.jsonl", "-o", tmp_path / "x")
    _one_line_error(code, err, "line 1 has no field 'text' (it has id, body)")
    code, _, err = run("train", *TINY, "--data", files / "saved", "--text-column", "content",
                       "--out", tmp_path / "r")
    _one_line_error(code, err, "no column 'content'")
    assert not (tmp_path / "x").exists()


@needs_torch
def test_token_id_beyond_the_vocabulary_is_one_error(run, tmp_path):
    ids = np.arange(20_000) % 200
    ids[12_345] = 5000
    ids.astype(np.uint16).tofile(tmp_path / "t.bin")
    code, _, err = run("train", *TINY, "--data", tmp_path / "t.bin", "--vocab-size", "4096",
                       "--out", tmp_path / "r")
    _one_line_error(code, err, "token id 5,000 (first at position 12,345) is beyond the "
                               "vocabulary (4,096 ids)")
    code, _, err = run("train", *TINY, "--data", tmp_path / "t.bin", "--out", tmp_path / "r")
    _one_line_error(code, err, "vocabulary (256 ids)")  # the tiny model's own


@needs_torch
def test_empty_or_truncated_token_files_are_one_error(run, files, tmp_path):
    (tmp_path / "empty.bin").write_bytes(b"")
    (tmp_path / "odd.bin").write_bytes(b"\x01\x00" * 5000 + b"\x01")
    np.save(tmp_path / "t.npy", np.arange(5000, dtype=np.uint16))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "t.npy").read_bytes()[:4000])
    for name, message in (("empty.bin", "is empty"), ("odd.bin", "is truncated"),
                          ("cut.npy", "is truncated")):
        code, _, err = run("train", *TINY, "--data", tmp_path / name, "--out", tmp_path / "r")
        _one_line_error(code, err, message)
    out = tmp_path / "p"
    corpora.prepare(files / "docs.parquet", out, tokenizer=str(files / "tok"))
    with open(out / "train.bin", "r+b") as f:
        f.truncate(1000)
    code, _, err = run("train", *TINY, "--data", out, "--out", tmp_path / "r")
    _one_line_error(code, err, "train.bin is truncated or damaged")


@needs_torch
def test_unparsable_tokenizer_is_one_error(run, files, tmp_path):
    (tmp_path / "bad.json").write_text('{"version": "1.0", "model": ')
    code, _, err = run("data", "prepare", files / "docs.parquet", "--tokenizer",
                       tmp_path / "bad.json", "-o", tmp_path / "x")
    _one_line_error(code, err, "is not a tokenizer file the tokenizers library can read")
    code, _, err = run("data", "prepare", "kjv", "--tokenizer", tmp_path, "-o", tmp_path / "x")
    _one_line_error(code, err, "no tokenizer.json in")
    code, _, err = run("train", *TINY, "--tokenizer", tmp_path / "bad.json", "--out", tmp_path / "r")
    _one_line_error(code, err, "is not a tokenizer file")


# ----- order, validation split, sweeps and fits ---------------------------------------------------
def test_order_is_deterministic_per_seed_and_validation_is_never_trained_on(tmp_path):
    np.arange(40_000, dtype=np.uint32).tofile(tmp_path / "pos.uint32.bin")  # id = position
    c = corpora.open_corpus(str(tmp_path / "pos.uint32.bin"), vocab_size=40_000,
                            cache_dir=tmp_path / "c", val_fraction=0.1)
    assert len(c.train) == 36_000 and int(c.val[0]) == 36_000
    a, b, other = (WindowSampler(c.train, 32, seed) for seed in (7, 7, 8))
    first = a.next_batch(2000)  # beyond one epoch (1,124 windows)
    assert np.array_equal(first, b.next_batch(2000))
    assert not np.array_equal(first[:50], other.next_batch(50))
    assert first.max() < 36_000  # no training window reaches the validation split
    from moescale.training.data import eval_windows

    assert eval_windows(c.val, 32, 10).min() >= 36_000


def test_sweep_spec_takes_a_prepared_folder(files, tmp_path):
    from moescale.sweeps.spec import SweepSpec

    out = tmp_path / "p"
    corpora.prepare(files / "docs.parquet", out, tokenizer=str(files / "tok"))
    spec = {"name": "s", "budgets": [1e10],
            "base": {"n_layers": 1, "n_heads": 2, "hidden_size": 32, "seq_len": 32,
                     "n_experts": 4, "top_k": 1, "expert_ffn": 64, "dense_ffn": 64},
            "train": {"batch_tokens": 256, "data": str(out)}}
    runs = SweepSpec.from_dict(spec).expand()
    assert {r.arch().vocab_size for r in runs} == {400}
    with pytest.raises(MoescaleError, match="vocabulary of 400"):
        SweepSpec.from_dict({**spec, "base": {**spec["base"], "vocab_size": 256}})
    # an audit's cases that passed the plan and failed every run at start
    other = tmp_path / "other_tok"
    other.mkdir()
    (other / "tokenizer.json").write_text((files / "tok" / "tokenizer.json").read_text()
                                          .replace('"unk_token"', '"unk_token" ', 1))
    with pytest.raises(MoescaleError, match="is not the tokenizer .* was prepared with"):
        SweepSpec.from_dict({**spec, "train": {**spec["train"], "tokenizer": str(other)}})
    with pytest.raises(MoescaleError, match="`text_column` .body. applies to .*not to a prepared"):
        SweepSpec.from_dict({**spec, "train": {**spec["train"], "text_column": "body"}})
    spec["train"] |= {"data": str(files / "docs.jsonl"), "tokenizer": str(files / "tok"),
                      "text_column": "body"}
    run = SweepSpec.from_dict(spec).expand()[0]
    assert run.arch().vocab_size == 400 and run.train["text_column"] == "body"


def test_export_columns_and_fit_refuses_mixed_corpora():
    import pandas as pd

    from moescale import fitting
    from moescale.sweeps.export import result_columns

    base = {"tokens": 1000, "unique_tokens": 1000, "repeated_tokens": 0, "eval_loss": 3.0}
    cols = result_columns({**base, "corpus": "web@abc", "tokenizer": "tok@def",
                           "corpus_tokens": 4000}, None)
    assert cols["corpus"] == "web@abc" and cols["tokenizer"] == "tok@def"
    assert cols["epochs"] == 0.25  # a quarter of the corpus, not "1 epoch"
    assert result_columns(base, None)["epochs"] == 1.0 and "corpus" not in result_columns(base, None)
    n = np.geomspace(1e6, 1e8, 8)
    frame = pd.DataFrame({"N": n, "D": 20 * n, "loss": 2 + 400 / n**0.3,
                          "corpus": ["kjv@aa"] * 5 + ["web@bb"] * 3})
    with pytest.raises(MoescaleError, match=r"mix 2 corpora: kjv@aa \(5 runs\), web@bb \(3 runs\)"):
        fitting.fit("chinchilla", frame)
    fitting.fit("chinchilla", frame.assign(corpus="kjv@aa"))  # one corpus fits


@pytest.mark.parametrize("where", ["same file", "source folder", "inside the folder",
                                   "folder holding the file"])
def test_prepare_never_replaces_its_own_source(run, tmp_path, docs, where):
    """An `out` that is, contains or lies inside the source is refused, with or without
    --force, and the user's text is untouched."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    text = folder / "corpus.txt"
    text.write_text("\n".join(docs[:50]))
    before = text.read_bytes()
    data, out = {"same file": (text, text), "source folder": (folder, folder),
                 "inside the folder": (folder, folder / "prepared"),
                 "folder holding the file": (text, folder)}[where]
    code, stdout, err = run("data", "prepare", data, "-o", out, "--force", "--threads", "1")
    assert code == 2 and not stdout
    assert err.startswith("Error:") and "lies inside" in err and len(err.strip().splitlines()) == 1
    assert text.read_bytes() == before and folder.is_dir()


def test_a_token_file_changed_after_prepare_is_caught_when_opened(run, tmp_path, docs):
    """An audit wrote ids beyond the vocabulary into a prepared folder: torch's IndexError
    came from inside training. Opening the folder checks the ids."""
    import numpy as np

    from moescale.training.corpora import open_prepared

    text = tmp_path / "t.txt"
    text.write_text("\n".join(docs[:200]))
    out = tmp_path / "prep"
    code, _, err = run("data", "prepare", text, "-o", out, "--threads", "1")
    assert code == 0, err
    ids = np.memmap(out / "train.bin", dtype=np.uint16, mode="r+")
    ids[5] = 300  # bytes: 256 ids
    ids.flush()
    del ids
    with pytest.raises(MoescaleError, match=r"token id 300 \(first at position 5\) is beyond "
                                            r"the vocabulary \(256 ids\)"):
        open_prepared(out)


def test_a_builtin_tokenizer_or_text_column_that_does_not_fit_prepared_data(run, tmp_path, docs):
    """An audit's cases: ``tokenizer = "bpe"`` on a folder prepared with bytes passed the plan
    and failed every run at start; ``--text-column`` on prepared data was silently ignored."""
    from moescale.sweeps.spec import SweepSpec

    text = tmp_path / "t.txt"
    text.write_text("\n".join(docs[:200]))
    out = tmp_path / "prep"
    code, _, err = run("data", "prepare", text, "-o", out, "--threads", "1")
    assert code == 0, err
    spec = {"name": "s", "budgets": [1e10],
            "base": {"n_layers": 1, "n_heads": 2, "hidden_size": 32, "seq_len": 32,
                     "n_experts": 4, "top_k": 1, "expert_ffn": 64, "dense_ffn": 64},
            "train": {"batch_tokens": 256, "data": str(out), "tokenizer": "bpe"}}
    with pytest.raises(MoescaleError, match=r"`tokenizer` bpe is not the tokenizer .* was "
                                            r"prepared with \(bytes\)"):
        SweepSpec.from_dict(spec)
    spec["train"]["tokenizer"] = "bytes"  # the one that made it: accepted
    assert SweepSpec.from_dict(spec).expand()[0].arch().vocab_size == 256
    code, _, err = run("train", *TINY, "--data", out, "--text-column", "body",
                       "--out", tmp_path / "r")
    _one_line_error(code, err, "--text-column 'body' applies to Parquet, JSON Lines, Arrow and "
                               "saved dataset sources, not to a prepared token folder")
