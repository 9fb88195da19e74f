"""Issue 33: a worker imports what a run needs and nothing more. ``torch.compiler.disable``
at import pulled in ``torch._dynamo`` (about a second of every worker's start-up); it is now
applied only when a run compiles (``fused.prepare_for_compile``). AdamW imported it at its
first use (1–2 s more); a run now steps without it (``training.startup``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import needs_torch


@needs_torch
def test_a_worker_does_not_import_dynamo():
    code = ("import sys, moescale.sweeps.worker, moescale.training.trainer, "
            "moescale.training.model, moescale.training.options\n"
            "print(sorted(m for m in ('torch._dynamo', 'torch._inductor', 'transformers', "
            "'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


@needs_torch
def test_a_whole_run_never_imports_dynamo(tmp_path):
    code = ("import sys\n"
            "from moescale.accounting.presets import get_preset\n"
            "from moescale.training.config import TrainConfig\n"
            "from moescale.training.trainer import train\n"
            f"train(get_preset('tiny'), TrainConfig(tokens=3 * 1024, batch_tokens=1024, "
            f"eval_tokens=1024, threads=1, out={str(tmp_path / 'run')!r}))\n"
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


@needs_torch
def test_the_step_without_dynamo_is_adamws_step_bitwise(monkeypatch):
    import torch

    from moescale.training import startup
    from moescale.training.startup import defer_dynamo, optimizer_step

    monkeypatch.setattr(startup, "dynamo_loaded", lambda: False)  # even if a test loaded it

    def trained(step) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 1))
        defer_dynamo(torch.optim.AdamW)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
        for _ in range(5):
            model(torch.randn(32, 8)).pow(2).mean().backward()
            step(opt)
            opt.zero_grad(set_to_none=True)
        return [p.detach().clone() for p in model.parameters()] + [
            s["exp_avg_sq"] for s in opt.state.values()]

    ours, torchs = trained(optimizer_step), trained(lambda opt: opt.step())
    assert all(torch.equal(a, b) for a, b in zip(ours, torchs, strict=True))


@needs_torch
@pytest.mark.slow
def test_compiled_model_leaves_the_routed_experts_eager_and_agrees():
    """Under ``torch.compile`` the routed experts still run eagerly (their group sizes depend
    on the data) and the compiled forward equals the eager one (dynamo's ``eager`` backend:
    tracing checked without a C++ toolchain)."""
    import torch

    from moescale.accounting.presets import get_preset
    from moescale.training import fused
    from moescale.training.model import MoETransformer
    from moescale.training.options import model_options

    torch.manual_seed(0)
    model = MoETransformer(get_preset("tiny"), model_options()).eval()
    x = torch.randint(0, 256, (2, 16))
    with torch.no_grad():
        eager = model(x).logits
    fused.prepare_for_compile()
    assert fused.routed_experts._eager_only
    compiled = torch.compile(model, backend="eager")
    with torch.no_grad():
        traced = compiled(x).logits
    assert torch.allclose(eager, traced, atol=1e-6)


@pytest.mark.parametrize("steps, batch, eval_tokens, every", [
    (27, 256, 1024, 13),          # 3·256·27 training tokens buy 1 evaluation of 1024: two
    (10_000, 2048, 65_536, 1000),  # a long run: ten, as before
    (1_000, 2048, 65_536, 500),   # 1.9 affordable (2 % of 3·2048·1000 / 65,536): two
])
def test_evaluation_cadence_scales_with_the_run(steps, batch, eval_tokens, every):
    from moescale.training.config import EVAL_SHARE, default_eval_every

    got = default_eval_every(steps, batch, eval_tokens)
    assert got == every
    evals = steps // got
    assert evals <= 10 and (evals <= 2 or evals * eval_tokens <= EVAL_SHARE * 3 * batch * steps)


@needs_torch
@pytest.mark.slow
def test_a_short_run_evaluates_twice_not_eleven_times(tmp_path):
    import json

    from moescale.training.config import TrainConfig
    from moescale.training.trainer import train

    result = train(__import__("moescale").architecture("tiny"),
                   TrainConfig(tokens=40 * 256, batch_tokens=256, seq_len=32, eval_tokens=4096,
                               threads=1, out=str(tmp_path / "r")))
    assert result.steps == 40
    records = [json.loads(x) for x in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    evaluated = [r["step"] for r in records if "event" not in r and r.get("eval_loss") is not None]
    assert evaluated == [20, 40]  # 3·256·40·0.05/4096 < 1: the minimum of two
