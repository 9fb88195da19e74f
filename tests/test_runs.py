"""RunTable: loaders, column mapping and aliases, derived columns, validation messages, hash."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest

from moescale.cli._options import parse_derive, parse_mapping
from moescale.errors import MoescaleError
from moescale.runs import UNITS, RunTable

FRAME = pd.DataFrame({"N": [1e8, 2e8, 4e8], "D": [2e9, 4e9, 8e9], "loss": [3.1, 2.9, 2.7],
                      "tag": ["a", "b", "c"]})
EPOCH = "epoch_chinchilla_svg_extracted_data.csv"


def write(frame: pd.DataFrame, path) -> None:
    """Write ``frame`` in the format of ``path``'s extension (JSON via the json module)."""
    suffix = path.suffix
    if suffix in (".csv", ".tsv"):
        frame.to_csv(path, sep="\t" if suffix == ".tsv" else ",", index=False)
    elif suffix == ".parquet":
        frame.to_parquet(path)
    elif suffix in (".jsonl", ".ndjson"):
        path.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict("records")))
    else:
        path.write_text(json.dumps(frame.to_dict("records")))


def error(call, *args, **kwargs) -> str:
    """The one-line message of the MoescaleError that ``call`` raises."""
    with pytest.raises(MoescaleError) as err:
        call(*args, **kwargs)
    message = str(err.value)
    assert "\n" not in message
    return message


# -- loaders -------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".ndjson", ".json", ".parquet"])
def test_every_format_loads_the_same_runs(tmp_path, suffix):
    path = tmp_path / f"runs{suffix}"
    write(FRAME, path)
    runs = RunTable.from_file(path).require(["N", "D"])
    assert len(runs) == 3 and runs.source == str(path)
    assert runs.arrays(["N"])["N"].tolist() == [1e8, 2e8, 4e8]
    assert runs.target().tolist() == [3.1, 2.9, 2.7]
    assert runs.frame["tag"].tolist() == ["a", "b", "c"]
    assert runs.frame.index.tolist() == [0, 1, 2]
    assert runs.data_hash() == RunTable.from_frame(FRAME).data_hash()


def test_csv_header_spaces_and_jsonl_blank_lines(tmp_path):
    (tmp_path / "runs.csv").write_text("N, D, loss\n1e8, 2e9, 3.0\n2e8, 4e9, 2.8\n")
    assert RunTable.from_file(tmp_path / "runs.csv").require(["N", "D"]).frame["D"].iloc[1] == 4e9
    (tmp_path / "runs.jsonl").write_text('{"N": 1e8, "loss": 3}\n\n{"N": 2e8, "loss": 2.9}\n')
    assert len(RunTable.from_file(tmp_path / "runs.jsonl").require(["N"])) == 2


def test_integer_columns_do_not_overflow(tmp_path):
    # Integers in JSON: 6·N·D = 1.92e19 would wrap around in int64.
    path = tmp_path / "runs.jsonl"
    write(FRAME.assign(N=[100_000_000, 200_000_000, 400_000_000],
                       D=[2_000_000_000, 4_000_000_000, 8_000_000_000]), path)
    runs = RunTable.from_file(path)
    assert runs.frame["N"].dtype == np.float64
    assert runs.frame["C"].tolist() == pytest.approx([1.2e18, 4.8e18, 1.92e19])


# -- hash ----------------------------------------------------------------------------------

def test_hash_is_the_same_for_csv_and_jsonl_of_the_same_data(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"N": rng.uniform(1e7, 1e9, 500), "D": rng.uniform(1e9, 1e11, 500),
                          "loss": rng.uniform(2, 4, 500), "family": rng.choice(["x", "y"], 500),
                          "seed": rng.integers(0, 5, 500)})
    write(frame, tmp_path / "runs.csv")
    write(frame[["seed", "loss", "family", "D", "N"]], tmp_path / "runs.jsonl")  # other order
    csv, jsonl = (RunTable.from_file(tmp_path / f) for f in ("runs.csv", "runs.jsonl"))
    assert (csv.frame["loss"].to_numpy() == frame["loss"].to_numpy()).all()
    assert (jsonl.frame["loss"].to_numpy() == frame["loss"].to_numpy()).all()
    assert csv.data_hash() == jsonl.data_hash()
    assert len(csv.data_hash()) == 64 and int(csv.data_hash(), 16) >= 0


def test_hash_changes_with_any_value_or_tag():
    base = RunTable.from_frame(FRAME).data_hash()
    one_ulp = FRAME.assign(loss=[3.1, np.nextafter(2.9, 3.0), 2.7])
    assert RunTable.from_frame(one_ulp).data_hash() != base
    assert RunTable.from_frame(FRAME.assign(tag=["a", "b", "d"])).data_hash() != base
    assert RunTable.from_frame(FRAME[["tag", "loss", "D", "N"]]).data_hash() == base
    assert RunTable.from_frame(FRAME, derive={"D": "D * 2"}).data_hash() != base


# -- mapping and aliases -------------------------------------------------------------------

def test_mapping_renames_and_keeps_other_columns_as_tags():
    df = pd.DataFrame({"Model Size": [1e8, 2e8], "tokens": [2e9, 4e9], "L": [3.0, 2.8],
                       "run": ["r1", "r2"]})
    runs = RunTable.from_frame(df, mapping={"Model Size": "N", "L": "loss"})
    assert runs.columns == ["N", "D", "loss", "run", "C", "M"]
    assert runs.to_dict()["tags"] == ["run"]
    to_alias = RunTable.from_frame(df, mapping={"Model Size": "N_a", "L": "loss"})
    assert to_alias.arrays(["N_a"])["N_a"].tolist() == [1e8, 2e8]
    assert "N_active" in to_alias.columns


@pytest.mark.parametrize("alias, name", [("N_a", "N_active"), ("N_act", "N_active"),
                                         ("active_params", "N_active"), ("tokens", "D"),
                                         ("compute", "C"), ("flops", "C"), ("experts", "E"),
                                         ("top_k", "K")])
def test_aliases(alias, name):
    runs = RunTable.from_frame(pd.DataFrame({alias: [1.0, 2.0], "loss": [3.0, 2.0]}))
    assert name in runs.columns and alias not in runs.columns
    assert runs.arrays([name, alias])[alias].tolist() == [1.0, 2.0]


def test_a_second_alias_stays_a_tag():
    runs = RunTable.from_frame(pd.DataFrame({"N_a": [1.0], "N_act": [5.0], "N_active": [2.0]}))
    assert runs.frame["N_active"].tolist() == [2.0] and runs.frame["N_a"].tolist() == [1.0]


def test_mapping_errors():
    message = error(RunTable.from_frame, FRAME, mapping={"Model Size": "N"}, source="runs.csv")
    assert "'Model Size'" in message and "runs.csv" in message and "N, D, loss, tag" in message
    message = error(RunTable.from_frame, FRAME, mapping={"tag": "N"})
    assert "'N', 'tag' would both be 'N'" in message


# -- derived columns -----------------------------------------------------------------------

def test_epoch_chinchilla_file_with_mapping_derives_tokens(shared_data):
    path = shared_data / EPOCH
    runs = RunTable.from_file(path, mapping=parse_mapping(["Model Size=N", "Training FLOP=C"]))
    raw = pd.read_csv(path)
    assert len(runs) == 245 and runs.derived == ["D", "M"]
    assert np.array_equal(runs.frame["N"], raw["Model Size"])
    assert np.allclose(runs.frame["D"], raw["Training FLOP"] / (6 * raw["Model Size"]),
                       rtol=1e-15, atol=0)
    assert np.allclose(runs.frame["M"], 6 * raw["Model Size"], rtol=1e-12, atol=0)
    runs.require(["N", "D", "C"])
    summary = runs.to_dict()
    assert summary["n_runs"] == 245 and summary["units"]["D"] == "tokens"
    assert summary["derived"] == ["D", "M"] and set(summary["tags"]) == {"x", "y", "color",
                                                                          "hex_color"}
    explicit = RunTable.from_file(path, mapping={"Model Size": "N", "Training FLOP": "C"},
                                  derive=parse_derive(["D=C/(6*N)"]))
    assert explicit.derived == ["D", "M"] and explicit.data_hash() == runs.data_hash()


def test_reference_data_loaders(shared_data):
    from moescale.reference_data import clark2022, epoch_chinchilla

    epoch = epoch_chinchilla(shared_data / EPOCH)
    assert len(epoch) == 240                              # 245 minus the 5 highest losses
    full = pd.read_csv(shared_data / EPOCH)
    assert epoch.frame["loss"].max() == sorted(full["loss"])[-6]
    clark = clark2022(shared_data / "clark2022_routing/curves.csv").require(["N", "E", "D"])
    assert len(clark) == 60 and set(clark.frame["router"]) == {"Dense", "S-Base"}
    assert clark.frame["D"].iloc[0] == pytest.approx(249_000 * 524_288)


def test_auto_derivation_prefers_active_parameters():
    runs = RunTable.from_frame(pd.DataFrame({"N_a": [1e8, 2e8], "N": [8e8, 1.6e9],
                                             "compute": [6e17, 2.4e18], "loss": [3.0, 2.8]}))
    assert runs.frame["D"].tolist() == pytest.approx([1e9, 2e9])   # C / (6·N_active)
    assert runs.frame["M"].tolist() == pytest.approx([6e8, 1.2e9])
    assert runs.derived == ["D", "M"]


def test_auto_derivation_of_compute_and_only_when_absent():
    runs = RunTable.from_frame(FRAME)
    assert runs.derived == ["C", "M"]
    assert runs.frame["C"].tolist() == pytest.approx([1.2e18, 4.8e18, 1.92e19])
    given = RunTable.from_frame(FRAME.assign(C=[1.0, 2.0, 3.0]))
    assert given.frame["C"].tolist() == [1.0, 2.0, 3.0] and given.derived == ["M"]
    assert RunTable.from_frame(FRAME.drop(columns="D")).derived == []
    text = RunTable.from_frame(FRAME.drop(columns="D").assign(C=1e18, N=["x", 2e8, 4e8]))
    assert "D" not in text.columns                  # no D from a non-numeric N


def test_derive_overwrites_chains_and_reads_numbers_functions_and_aliases():
    runs = RunTable.from_frame(FRAME.assign(step=[10, 20, 40]), derive=parse_derive([
        "N_a = N / 2", "D = step * 1e8", "lr=1e-3 * sqrt(N / N)", "batch_size = D / step",
        "G = N_a / N_active"]))
    assert runs.frame["D"].tolist() == [1e9, 2e9, 4e9]
    assert runs.frame["lr"].tolist() == pytest.approx([1e-3] * 3)
    assert runs.frame["batch_size"].tolist() == [1e8] * 3
    assert runs.frame["N_active"].tolist() == [5e7, 1e8, 2e8] and "N_a" not in runs.columns
    assert runs.frame["G"].tolist() == [1.0] * 3
    assert runs.derived == ["N_active", "D", "lr", "batch_size", "G", "C", "M"]
    assert runs.frame["C"].tolist() == pytest.approx([3e17, 1.2e18, 4.8e18])  # 6·N_active·D
    assert RunTable.from_frame(FRAME, derive={"K": "2"}).frame["K"].tolist() == [2.0] * 3


@pytest.mark.parametrize("derive, message", [
    ({"C": "6 * Q"}, "`derive` C=6 * Q: column 'Q' is missing (columns: N, D, loss, tag)"),
    ({"C": "6 * (N"}, "`derive` C=6 * (N failed"),
    ({"C": "6 *"}, "`derive` C=6 * failed"),
    ({"N": "N = 6 * N"}, "must be an expression"),
    ({"C": "nosuchfunction(N)"}, "`derive` C=nosuchfunction(N) failed"),
])
def test_bad_derive_expressions(derive, message):
    assert message in error(RunTable.from_frame, FRAME, derive=derive)


# -- validation ----------------------------------------------------------------------------

@pytest.mark.parametrize("frame, names, message", [
    (FRAME.drop(columns="D"), ["N", "D"],
     "column 'D' is missing; the table has: N, loss, tag (rename one to 'D' with `mapping`"),
    (FRAME.drop(columns="loss"), ["N"], "column 'loss' is missing"),
    (FRAME.assign(D=[2e9, np.nan, 8e9]), ["N", "D"],
     "column 'D' is not a finite number in rows 2 (e.g. nan)"),
    (FRAME.assign(loss=[np.inf, 2.9, -np.inf]), ["N"],
     "column 'loss' is not a finite number in rows 1, 3"),
    (FRAME.assign(N=[1e8, 0, -1]), ["N", "D"], "column 'N' must be positive in rows 2, 3"),
    (FRAME.assign(S=[0.2, 1.5, -0.1]), ["N", "S"], "column 'S' must be in [0, 1] in rows 2, 3"),
    (FRAME.assign(N=["x", 2e8, 4e8]), ["N", "D"],
     "column 'N' is not a finite number in rows 1 (e.g. 'x')"),
    (FRAME.assign(E=[True, False, True]), ["E"], "column 'E' is not a finite number in rows 1, 2"),
    (pd.concat([FRAME, FRAME.iloc[[1]]]), ["N", "D"],
     "duplicate runs (identical N, D, loss) in rows 2, 4"),
    (pd.DataFrame({"N": ["1e8", "100000000"], "loss": [3.0, 3.0]}), ["N"],
     "duplicate runs (identical N, loss) in rows 1, 2"),
])
def test_validation_names_the_column_and_rows(frame, names, message):
    assert message in error(RunTable.from_frame(frame).require, names)


def test_validation_accepts_zero_shared_fraction_other_targets_and_aliases():
    runs = RunTable.from_frame(FRAME.assign(S=[0.0, 0.5, 1.0], lr=[1e-3, 2e-3, 3e-3]))
    assert runs.require(["N", "S"]) is runs
    assert runs.require(["N", "D"], target="lr") is runs
    assert error(runs.require, ["N_a"]).startswith("column 'N_active' is missing")
    file_runs = RunTable.from_frame(FRAME, source="runs.csv")
    assert "the file has: N, D, loss, tag, C, M" in error(file_runs.require, ["E"])


def test_row_numbers_are_capped_and_refer_to_the_source_after_subset():
    frame = pd.DataFrame({"N": [-1.0] * 12 + [1.0], "loss": [1.0] * 13})
    assert "in rows 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 2 more" in error(
        RunTable.from_frame(frame).require, ["N"])
    sub = RunTable.from_frame(FRAME.assign(D=[2e9, 4e9, np.nan])).subset([0, 2])
    assert "in rows 3" in error(sub.require, ["D"])


def test_arrays_of_missing_or_text_columns_are_clear_errors():
    runs = RunTable.from_frame(FRAME)
    assert "column 'E' is missing" in error(runs.arrays, ["E"])
    assert "column 'tag' is not numeric" in error(runs.target, "tag")


# -- file errors ---------------------------------------------------------------------------

def test_file_errors(tmp_path):
    assert error(RunTable.from_file, tmp_path / "missing.csv").startswith("file not found")
    assert "is not a file" in error(RunTable.from_file, tmp_path)
    for name in ("runs.xlsx", "runs"):
        (tmp_path / name).write_text("N,loss\n1,2\n")
        assert "unknown file type" in error(RunTable.from_file, tmp_path / name)
    (tmp_path / "header.csv").write_text("N,D,loss\n")
    assert "holds no runs" in error(RunTable.from_file, tmp_path / "header.csv")
    (tmp_path / "list.json").write_text("[]")
    assert "holds no runs" in error(RunTable.from_file, tmp_path / "list.json")


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".json", ".parquet"])
def test_empty_files(tmp_path, suffix):
    (tmp_path / f"empty{suffix}").write_text("")
    assert error(RunTable.from_file, tmp_path / f"empty{suffix}").endswith("is empty")


@pytest.mark.parametrize("name, text, message", [
    ("dict.json", '{"N": [1, 2]}', "must hold a JSON list of objects"),
    ("numbers.json", "[1, 2]", "item 1 is not a JSON object"),
    ("broken.json", '[{"N": 1},', "is not valid JSON at line 1"),
    ("broken.jsonl", '{"N": 1}\n{"N": \n', "is not valid JSON at line 2"),
    ("list.jsonl", '{"N": 1}\n[1]\n', "line 2 is not a JSON object"),
    ("broken.parquet", "not parquet", "could not be read as Parquet"),
    ("latin.csv", None, "could not be read as CSV"),
])
def test_unreadable_files(tmp_path, name, text, message):
    path = tmp_path / name
    if text is None:
        path.write_bytes(b"N,loss\n1,\xff\xfe\n")
    else:
        path.write_text(text)
    assert message in error(RunTable.from_file, path)


def test_parquet_without_pyarrow(tmp_path, monkeypatch):
    write(FRAME, tmp_path / "runs.parquet")
    monkeypatch.setitem(sys.modules, "pyarrow", None)       # import pyarrow now fails
    assert "pip install moescale[parquet]" in error(RunTable.from_file,
                                                    tmp_path / "runs.parquet")


# -- flags, subset, summary ----------------------------------------------------------------

def test_parse_mapping_and_derive():
    assert parse_mapping(["Model Size=N", " Training FLOP = C "]) == {"Model Size": "N",
                                                                      "Training FLOP": "C"}
    assert parse_derive(["D=C/(6*N)", "x = a==b"]) == {"D": "C/(6*N)", "x": "a==b"}
    assert parse_mapping("Model Size=N") == {"Model Size": "N"}
    assert parse_mapping([]) == {}
    for bad in (["N"], ["=N"], ["Model Size="]):
        assert "must look like COLUMN=NAME" in error(parse_mapping, bad)
    assert "--derive 'D' must look like NAME=EXPRESSION" in error(parse_derive, ["D"])
    assert "gives 'A' twice" in error(parse_mapping, ["A=N", "A=D"])


def test_subset_keeps_tags_and_reindexes():
    runs = RunTable.from_frame(FRAME)
    sub = runs.subset(np.array([False, True, True]))
    assert len(sub) == 2 and sub.frame["tag"].tolist() == ["b", "c"]
    assert sub.frame.index.tolist() == [0, 1] and sub.derived == runs.derived
    assert runs.subset([2, 0]).frame["tag"].tolist() == ["c", "a"]
    assert len(runs.subset([])) == 0
    assert runs.subset([0]).data_hash() != runs.data_hash()
    assert runs.subset(pd.Series([True, True, True])).data_hash() == runs.data_hash()
    with pytest.raises(ValueError, match="mask"):
        runs.subset([True, False])


def test_to_dict_summary():
    summary = RunTable.from_frame(FRAME.assign(S=0.5)).to_dict()
    assert summary == {"source": "<frame>", "n_runs": 3,
                       "columns": ["N", "D", "loss", "tag", "S", "C", "M"],
                       "units": {c: UNITS[c] for c in ["N", "D", "loss", "S", "C", "M"]},
                       "tags": ["tag"], "derived": ["C", "M"],
                       "hash": RunTable.from_frame(FRAME.assign(S=0.5)).data_hash()}
    assert UNITS["D"] == "tokens" and UNITS["loss"] == "nats/token" and UNITS["S"] == "fraction"


def test_docstring_example_runs():
    import doctest

    import moescale.runs

    result = doctest.testmod(moescale.runs)
    assert result.attempted > 0 and result.failed == 0
