"""Training on real text: the loss falls, resume is exact, DDP (gloo, 2 processes) agrees."""

from __future__ import annotations

import json
import os
import socket

import pytest

torch = pytest.importorskip("torch")

from moescale.accounting.presets import get_preset  # noqa: E402
from moescale.errors import MoescaleError  # noqa: E402
from moescale.training.config import TrainConfig  # noqa: E402
from moescale.training.trainer import train  # noqa: E402


def _losses(run_dir) -> dict[int, float]:
    lines = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return {r["step"]: r["step_train_loss"] for r in lines if "step_train_loss" in r}


@pytest.mark.slow
def test_tiny_model_learns_kjv_well_below_unigram_entropy(tmp_path):
    torch.set_num_threads(2)
    cfg = TrainConfig(tokens=60 * 4096, batch_tokens=4096, seq_len=128, lr=3e-3, seed=0,
                      eval_tokens=16_384, cache_dir=str(tmp_path / "cache"), out=str(tmp_path / "run"))
    result = train(get_preset("tiny"), cfg)
    assert result.vocab_size == 256 and result.tokens == 60 * 4096
    assert 3.0 < result.unigram_entropy < 3.3  # bytes of English text, nats
    assert result.initial_eval_loss > 5.0  # ≈ ln 256 at initialisation
    assert result.eval_loss < result.unigram_entropy - 0.5
    assert result.flops == pytest.approx(result.tokens * result.flops_per_token)
    assert result.unique_tokens == result.tokens and result.repeated_tokens == 0
    records = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    logged = [r for r in records if "train_loss" in r and "event" not in r]
    assert {"lr", "aux_loss", "z_loss", "load_cv", "tokens_per_second", "flops"} <= set(logged[-1])
    assert (tmp_path / "run" / "checkpoint.pt").is_file()


def _small_cfg(tmp_path, out: str, **kw) -> TrainConfig:
    return TrainConfig(tokens=12 * 512, batch_tokens=512, seq_len=64, lr=2e-3, log_every=1,
                       eval_every=4, eval_tokens=1024, cache_dir=str(tmp_path / "cache"),
                       out=str(tmp_path / out), **kw)


def test_resume_continues_the_same_loss_curve(tmp_path):
    arch = get_preset("tiny")
    straight = train(arch, _small_cfg(tmp_path, "a"))
    train(arch, _small_cfg(tmp_path, "b", stop_after_steps=6, checkpoint_every=3))
    resumed = train(arch, _small_cfg(tmp_path, "b", resume=True))
    a, b = _losses(tmp_path / "a"), _losses(tmp_path / "b")
    assert sorted(a) == sorted(b) == list(range(1, 13))
    for step in a:
        assert abs(a[step] - b[step]) < 1e-6, step
    assert resumed.eval_loss == pytest.approx(straight.eval_loss, abs=1e-6)
    assert resumed.tokens == straight.tokens


def test_resume_without_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(MoescaleError, match="checkpoint"):
        train(get_preset("tiny"), _small_cfg(tmp_path, "empty", resume=True))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, port: int, tmp: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE="2")
    torch.set_num_threads(1)
    from pathlib import Path

    from moescale.training.trainer import Trainer

    # no load-balance loss: it is a product of batch statistics (f_e·P_e), so each rank's loss
    # on half the batch differs from the loss on the whole batch; everything else is exact
    cfg = _small_cfg(Path(tmp), "ddp").replace(tokens=4 * 512, eval_every=2, aux_loss_coef=0.0)
    trainer = Trainer(get_preset("tiny"), cfg)
    result = trainer.run()
    flat = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    torch.save({"params": flat, "eval_loss": result.eval_loss}, Path(tmp) / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_ddp_two_processes_gloo_matches_single_process(tmp_path):
    torch.multiprocessing.spawn(_ddp_worker, args=(_free_port(), str(tmp_path)), nprocs=2)
    r0, r1 = (torch.load(tmp_path / f"rank{i}.pt") for i in range(2))
    assert torch.equal(r0["params"], r1["params"])  # replicas stay synchronised
    single = train(get_preset("tiny"), _small_cfg(tmp_path, "single").replace(
        tokens=4 * 512, eval_every=2, aux_loss_coef=0.0))
    ddp, one = _losses(tmp_path / "ddp"), _losses(tmp_path / "single")
    assert sorted(ddp) == [1, 2, 3, 4]
    for step in ddp:  # same global batch, gradients averaged over ranks
        assert ddp[step] == pytest.approx(one[step], abs=1e-4)
    assert r0["eval_loss"] == pytest.approx(single.eval_loss, abs=1e-4)
