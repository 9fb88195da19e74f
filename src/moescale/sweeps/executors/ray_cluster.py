"""Run sweep runs on a Ray cluster (``--executor ray``).

Each run is a named, detached Ray actor (``moescale-run-<id>`` in namespace ``moescale``) that
requests ``cpus_per_run`` CPUs and ``gpus_per_run`` GPUs and supervises one worker process —
the same ``python -m moescale.sweeps.worker`` as the local executor. The actor returns the
result and the learning curve to the driver, so workers need not share the driver's disk
(their run folders live at the same path on their node). Because the actors are detached, a
driver that dies leaves them running; the next driver finds them by name and takes them back.

Without an ``address`` a local Ray instance is started for the sweep and shut down at the end;
its address is :attr:`RayExecutor.address`, which the driver keeps in the store, and a
restarted driver gives it back as ``previous_address`` to reconnect.
"""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path
from typing import Any

from moescale.errors import MoescaleError
from moescale.sweeps import worker
from moescale.sweeps.executors.base import Outcome, exit_outcome, folder_outcome
from moescale.sweeps.executors.local import available_cpus, start_worker
from moescale.sweeps.spec import RunSpec

NAMESPACE = "moescale"
# Ray reads this when it is imported: "0" makes it use 127.0.0.1 as the node address (as on
# Windows/macOS) instead of the machine's network address.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


class RunSupervisor:
    """The actor body: start one worker process, report its outcome when it ends."""

    def __init__(self) -> None:
        self.proc = None
        self.run_dir: Path | None = None

    def start(self, run: dict[str, Any], run_dir: str, threads: int, device: str) -> int:
        env = os.environ | dict.fromkeys(worker.THREAD_VARS, str(threads))
        self.run_dir = Path(run_dir)
        self.proc = start_worker(RunSpec.from_dict(run), self.run_dir, threads, device, env)
        return self.proc.pid

    def outcome(self) -> dict[str, Any] | None:
        """None while the worker runs; then the outcome with its curve (as a dict)."""
        code = self.proc.poll() if self.proc is not None else None
        if self.proc is None or code is None:
            return None
        found = folder_outcome("", self.run_dir, with_curve=True)
        if found is not None and (code == 0 or found.status == "failed"):
            return found.__dict__
        out = exit_outcome("", self.run_dir, code).__dict__
        return {k: v for k, v in out.items() if k != "run_id"}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()


def _reachable(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except (OSError, ValueError):
        return False


def _check_ray_client(address: str) -> None:
    """A ``ray://HOST:PORT`` address (Ray Client) needs ``ray[client]`` (grpcio) and a port
    that answers; say so in one line before Ray waits 30 s to find out."""
    try:
        import grpc  # noqa: F401
    except ImportError:
        raise MoescaleError(f"`address` {address} (Ray Client) needs ray[client]: "
                            "pip install 'moescale[ray]'") from None
    if not _reachable(address.removeprefix("ray://")):
        raise MoescaleError(f"cannot reach the Ray cluster at {address}: nothing answers on "
                            "that port (the head node's Ray Client server, default port 10001)")


class RayExecutor:
    """Runs as Ray actors; ``address`` is ``None`` (start a local instance), ``auto`` or
    ``ray://host:10001``."""

    name = "ray"

    def __init__(self, address: str | None = None, cpus_per_run: int | None = None,
                 gpus_per_run: int | None = None, threads: int | None = None,
                 workers: int | None = None, previous_address: str | None = None,
                 local_cpus: int | None = None) -> None:
        if not address:  # a local instance: keep all of Ray's traffic on the loopback
            os.environ.setdefault(LOOPBACK_ENV, "0")
        import ray

        self.ray = ray
        self.cpus, self.gpus = max(cpus_per_run or 1, 1), gpus_per_run or 0
        self.threads = threads or self.cpus
        self.address: str | None = None  # set when this executor starts its own instance
        self._connect(address, previous_address, local_cpus)
        total = ray.cluster_resources().get("CPU", 1)
        self.capacity = workers or max(int(total // self.cpus), 1)
        where = address or "a local Ray instance"
        self.description = (f"Ray ({where}), {self.capacity} runs at once × {self.cpus} CPU"
                            + (f", {self.gpus} GPU" if self.gpus else "") + " each")
        self._actor_class = ray.remote(RunSupervisor)
        self._running: dict[str, tuple[Any, Path]] = {}

    @classmethod
    def options(cls, given: dict[str, Any]) -> dict[str, Any]:
        """Its options from ``sweep run``'s: the cluster ``address`` (else the local instance
        a killed driver of this store started, else a new one), workers, threads, resources."""
        from moescale.sweeps.executors.local import _resources
        from moescale.sweeps.runner import previous_engine

        store = given.get("store")
        return {"address": given.get("address"), "workers": given.get("workers"),
                "threads": given.get("threads"),
                "previous_address": previous_engine(store) if store else None,
                **_resources(given)}

    # ----- connection ------------------------------------------------------------------------
    def _connect(self, address: str | None, previous: str | None,
                 local_cpus: int | None) -> None:
        ray = self.ray
        options = dict(namespace=NAMESPACE, log_to_driver=False, logging_level="ERROR",
                       include_dashboard=False)
        if address:
            if address.startswith("ray://"):
                _check_ray_client(address)
            try:
                with warnings.catch_warnings():  # its failure is the one line below
                    warnings.simplefilter("ignore")
                    ray.init(address=address, **options)
            except (ConnectionError, RuntimeError) as exc:
                raise MoescaleError(f"cannot reach the Ray cluster at {address}: "
                                    f"{str(exc).splitlines()[0]}") from None
            return
        if previous and _reachable(previous):  # the instance a killed driver started
            ray.init(address=previous, **options)
            self.address = previous
            return
        ray.init(num_cpus=local_cpus or available_cpus(), object_store_memory=128 * 2**20,
                 **options)
        self.address = ray.get_runtime_context().gcs_address

    # ----- the interface ---------------------------------------------------------------------
    def submit_batch(self, items: list[tuple[RunSpec, Path]]) -> list[str]:
        return [self.submit(run, run_dir) for run, run_dir in items]

    def submit(self, run: RunSpec, run_dir: Path) -> str:
        name = f"moescale-run-{run.id}"
        self._kill_named(name)  # a finished or stale actor of an earlier attempt
        actor = self._actor_class.options(
            name=name, lifetime="detached", num_cpus=self.cpus, num_gpus=self.gpus,
            max_concurrency=2).remote()
        device = "cuda" if self.gpus else "-"
        self.ray.get(actor.start.remote(run.to_dict(), str(run_dir), self.threads, device))
        self._running[run.id] = (actor, run_dir)
        return f"ray:{name}"

    def reattach(self, run: RunSpec, run_dir: Path, job_id: str) -> bool:
        if not job_id.startswith("ray:"):
            return False
        try:
            actor = self.ray.get_actor(job_id[4:], namespace=NAMESPACE)
        except ValueError:  # no such actor: it died with its cluster
            return False
        self._running[run.id] = (actor, run_dir)
        return True

    def running(self) -> set[str]:
        return set(self._running)

    def poll(self) -> list[Outcome]:
        ended = []
        for run_id, (actor, _) in list(self._running.items()):
            try:
                found = self.ray.get(actor.outcome.remote(), timeout=30)
            except (self.ray.exceptions.RayActorError, self.ray.exceptions.GetTimeoutError) as exc:
                found = {"status": "failed", "retryable": True,
                         "error": f"Ray actor lost: {str(exc).splitlines()[0]}"}
            if found is None:
                continue
            del self._running[run_id]
            self._kill(actor)
            ended.append(Outcome(**{**found, "run_id": run_id}))
        return ended

    def shutdown(self) -> None:
        for actor, _ in self._running.values():
            try:
                self.ray.get(actor.stop.remote(), timeout=10)
            except Exception:  # noqa: BLE001 — already gone is fine
                pass
            self._kill(actor)
        self._running.clear()
        self.close()

    def close(self) -> None:
        """Disconnect; stop the local instance this sweep started."""
        if self.ray.is_initialized():
            self.ray.shutdown()

    def _kill(self, actor) -> None:
        try:
            self.ray.kill(actor, no_restart=True)
        except Exception:  # noqa: BLE001
            pass

    def _kill_named(self, name: str) -> None:
        try:
            self._kill(self.ray.get_actor(name, namespace=NAMESPACE))
        except ValueError:
            pass
