"""``moescale train`` run folders back into a RunTable, and a law fitted on it."""

import pytest

from conftest import needs_torch
from moescale.errors import MoescaleError


@pytest.fixture(scope="module")
def run_folders(tmp_path_factory):
    from moescale.accounting.presets import get_preset
    from moescale.training.config import TrainConfig
    from moescale.training.trainer import train

    root = tmp_path_factory.mktemp("runs")
    for i, tokens in enumerate((2048, 4096)):
        train(get_preset("tiny"), TrainConfig(tokens=tokens, batch_tokens=512, seq_len=64,
                                               eval_every=2, eval_tokens=1024, threads=1,
                                               out=str(root / f"run{i}"), seed=i))
    return root


@needs_torch
def test_train_folders_become_a_run_table(run_folders):
    import moescale

    table = moescale.runs_from_train_folders(run_folders)
    assert len(table) == 2
    frame = table.frame.sort_values("D")
    assert list(frame["D"]) == [2048.0, 4096.0]
    assert (frame["loss"] > 0).all() and (frame["N"] > frame["N_active"]).all()
    assert frame["C"].iloc[1] == pytest.approx(2 * frame["C"].iloc[0])
    one = moescale.runs_from_train_folders([run_folders / "run0"], law="chinchilla")
    assert len(one) == 1 and "N" in one.columns


def test_a_folder_without_runs_is_one_clear_error(tmp_path):
    from moescale.sweeps.export import runs_from_train_folders

    with pytest.raises(MoescaleError, match="no moescale train run folder"):
        runs_from_train_folders(tmp_path)
    with pytest.raises(MoescaleError, match="not found"):
        runs_from_train_folders(tmp_path / "missing")
