"""RunTable: loaders, column mapping, derived columns, validation messages, content hash."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import reference_file
from moescale.errors import MoescaleError
from moescale.runs import RunTable, parse_derive, parse_mapping

FRAME = pd.DataFrame({"N": [1e8, 2e8, 4e8], "D": [2e9, 4e9, 8e9], "loss": [3.1, 2.9, 2.7],
                      "tag": ["a", "b", "c"]})


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".json", ".parquet"])
def test_every_format_loads_the_same_runs(tmp_path, suffix):
    path = tmp_path / f"runs{suffix}"
    {".csv": lambda: FRAME.to_csv(path, index=False),
     ".tsv": lambda: FRAME.to_csv(path, sep="\t", index=False),
     ".jsonl": lambda: FRAME.to_json(path, orient="records", lines=True),
     ".json": lambda: FRAME.to_json(path, orient="records"),
     ".parquet": lambda: FRAME.to_parquet(path)}[suffix]()
    runs = RunTable.from_file(path).require(["N", "D"])
    assert len(runs) == 3 and runs.arrays(["N"])["N"].tolist() == [1e8, 2e8, 4e8]
    assert runs.data_hash() == RunTable.from_frame(FRAME).data_hash()
    assert runs.to_dict()["units"]["D"] == "tokens"


def test_epoch_file_with_mapping_and_derived_tokens():
    path = reference_file("epoch_chinchilla_svg_extracted_data.csv")
    runs = RunTable.from_file(path, mapping=parse_mapping(["Model Size=N", "Training FLOP=C"]))
    assert len(runs) == 245 and "D" in runs.derived and "M" in runs.derived
    f = runs.frame
    assert np.allclose(f["D"], f["C"] / (6 * f["N"]))
    explicit = RunTable.from_file(path, mapping={"Model Size": "N", "Training FLOP": "C"},
                                  derive=parse_derive(["D=C/(6*N)"]))
    assert explicit.data_hash() == runs.data_hash()


def test_integer_columns_do_not_overflow(tmp_path):
    # JSON reads 4e8 and 8e9 as int64; 6·N·D = 1.92e19 would wrap around in int64.
    path = tmp_path / "runs.jsonl"
    FRAME.to_json(path, orient="records", lines=True)
    assert RunTable.from_file(path).frame["C"].tolist() == pytest.approx([1.2e18, 4.8e18, 1.92e19])


def test_aliases_and_auto_derivation_prefer_active_parameters():
    runs = RunTable.from_frame(pd.DataFrame({"N_a": [1e8, 2e8], "N": [8e8, 1.6e9],
                                             "compute": [6e17, 2.4e18], "loss": [3.0, 2.8]}))
    assert runs.arrays(["N_a"])["N_a"].tolist() == [1e8, 2e8]
    assert runs.frame["D"].tolist() == pytest.approx([1e9, 2e9])   # C / (6·N_active)


@pytest.mark.parametrize("frame, names, message", [
    (FRAME.drop(columns="D"), ["N", "D"], "column 'D' is missing"),
    (FRAME.assign(D=[2e9, np.nan, 8e9]), ["N", "D"], "column 'D' is not a finite number in rows 2"),
    (FRAME.assign(N=[1e8, 0, -1]), ["N", "D"], "column 'N' must be positive in rows 2, 3"),
    (FRAME.assign(S=[0.2, 1.5, 0.0]), ["N", "S"], "column 'S' must be in [0, 1] in rows 2"),
    (FRAME.assign(N=["x", 2e8, 4e8]), ["N", "D"], "column 'N' is not a finite number in rows 1"),
    (pd.concat([FRAME, FRAME.iloc[[1]]]), ["N", "D"], "runs listed twice"),
])
def test_validation_names_the_column_and_rows(frame, names, message):
    with pytest.raises(MoescaleError) as err:
        RunTable.from_frame(frame).require(names)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_file_and_option_errors(tmp_path):
    with pytest.raises(MoescaleError, match="not found"):
        RunTable.from_file(tmp_path / "missing.csv")
    (tmp_path / "runs.xlsx").write_text("x")
    with pytest.raises(MoescaleError, match="unknown file type"):
        RunTable.from_file(tmp_path / "runs.xlsx")
    (tmp_path / "empty.csv").write_text("N,D,loss\n")
    with pytest.raises(MoescaleError, match="no runs"):
        RunTable.from_file(tmp_path / "empty.csv")
    with pytest.raises(MoescaleError, match="--map 'N'"):
        parse_mapping(["N"])
    with pytest.raises(MoescaleError, match="Model Size"):
        RunTable.from_frame(FRAME, mapping={"Model Size": "N"})
    with pytest.raises(MoescaleError, match="column 'Q' is missing"):
        RunTable.from_frame(FRAME, derive={"C": "6 * Q"})
    with pytest.raises(MoescaleError, match="--derive"):
        RunTable.from_frame(FRAME, derive={"C": "6 * (N"})


def test_subset_keeps_tags_and_reindexes():
    runs = RunTable.from_frame(FRAME)
    sub = runs.subset(np.array([False, True, True]))
    assert len(sub) == 2 and sub.frame["tag"].tolist() == ["b", "c"]
    assert sub.frame.index.tolist() == [0, 1]
    assert runs.subset([0]).data_hash() != runs.data_hash()


def test_reference_data_loaders():
    from moescale.reference_data import clark2022, epoch_chinchilla

    epoch = epoch_chinchilla(reference_file("epoch_chinchilla_svg_extracted_data.csv"))
    assert len(epoch) == 240                              # 245 minus the 5 highest losses
    full = pd.read_csv(reference_file("epoch_chinchilla_svg_extracted_data.csv"))
    assert epoch.frame["loss"].max() == sorted(full["loss"])[-6]
    clark = clark2022(reference_file("clark2022_routing/curves.csv")).require(["N", "E", "D"])
    assert len(clark) == 60 and set(clark.frame["router"]) == {"Dense", "S-Base"}
    assert clark.frame["D"].iloc[0] == pytest.approx(249_000 * 524_288)
