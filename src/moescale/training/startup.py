"""Keep ``torch._dynamo`` out of runs that compile nothing.

Importing it costs 1–2 s of CPU per process (as much again as ``import torch``), and torch's
optimizers import it on their first use: ``Optimizer.__init__`` and friends through
``torch._disable_dynamo`` and every ``step`` through ``_use_grad_for_differentiable``. Both
only keep dynamo from tracing the optimizer, and this trainer compiles the model, never the
optimizer; so until a run compiles, nothing traces and the wrappers can be skipped. Torch is
pinned (2.13), and ``test_worker_startup.py`` checks that a whole run leaves dynamo unloaded.
"""

from __future__ import annotations

import inspect
import sys

import torch


def dynamo_loaded() -> bool:
    return "torch._dynamo" in sys.modules


def defer_dynamo(*classes: type) -> None:
    """Let the methods of ``classes`` that torch wraps in ``torch._disable_dynamo`` (an
    optimizer's ``__init__``, ``zero_grad``, ``state_dict``, …) run without importing dynamo.
    A no-op once it is loaded."""
    if dynamo_loaded():
        return
    inner = torch._disable_dynamo(lambda: None).__code__
    for cls in classes:
        for klass in cls.__mro__:
            for fn in vars(klass).values():
                wrapped = getattr(fn, "__wrapped__", None)
                if getattr(fn, "__code__", None) is inner and wrapped is not None:
                    wrapped.__dynamo_disable = wrapped  # where torch._compile caches its callee


def optimizer_step(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.step()``; while dynamo is not loaded, the same update without the wrappers
    that import it (the step's own body, under ``no_grad`` as its wrapper sets; no step
    hooks are registered by this trainer)."""
    if dynamo_loaded() or optimizer.defaults.get("differentiable"):
        optimizer.step()
        return
    with torch.no_grad():
        inspect.unwrap(type(optimizer).step)(optimizer)
