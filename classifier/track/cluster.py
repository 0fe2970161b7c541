"""Score a track's checkpoints as Ray tasks: the library side of `head-roles track --ray [ADDRESS]`.

Each checkpoint is one task, which loads and scores the model wherever Ray places it (with a GPU
when the cluster has one and the device is not `cpu`) and returns the finished Run to the driver;
the driver writes it into the run store and renders the track (classifier.track.tracking). So only
the driver needs the store and the output folder: no shared file system. The workers need
head-roles installed (the driver's code: a worker running other code is a failed task, since the
store key names the code that made a run) and must reach the models (hub ids are downloaded on the
worker; a local checkpoint path must exist there).
"""

from __future__ import annotations

import importlib.util
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping

from classifier.errors import InputError, one_line
from classifier.settings import ScoreSettings
from classifier.track.store import ModelSpec, code_identity, score_model

# `--ray` given without an address: start a Ray instance on this machine (Ray's own name for it).
LOCAL = "local"
# Seconds to wait for a HOST:PORT address to answer: Ray itself retries an unreachable one for minutes.
CONNECT_SECONDS = 5


def check_ray() -> None:
    """Say before any work that Ray is missing (importing it takes seconds: only looked up here)."""
    if importlib.util.find_spec("ray") is None:
        raise InputError("--ray needs Ray: pip install 'head-roles[ray]'")


@contextmanager
def ray_session(address: str):
    """Connect to `address` (LOCAL: a new instance here), or use the caller's connection when
    ray.init was already called (it is then left open)."""
    import ray

    if ray.is_initialized():
        yield ray
        return
    check_reachable(address)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, ValueError, RuntimeError) as err:
        raise InputError(f"--ray {address}: cannot connect ({one_line(err)})") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def check_reachable(address: str) -> None:
    """A HOST:PORT (or ray://HOST:PORT) address must accept a connection within CONNECT_SECONDS."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():  # `local`, `auto`: Ray finds (or starts) the instance itself
        return
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as err:
        raise InputError(f"--ray {address}: no Ray cluster answers there ({err.strerror or err})") from None


@dataclass(frozen=True)
class TaskOutcome:
    """What one task gave back: the run and the model's identity (for the store key), or the error."""

    run: object | None = None  # classifier.run.Run
    identity: dict | None = None
    error: str | None = None


def score_task(spec: ModelSpec, corpus, settings: ScoreSettings, tokenizer: str | None, code: str) -> TaskOutcome:
    """Runs on a Ray worker. Errors come back as text: some exceptions do not survive pickling."""
    if code_identity() != code:
        return TaskOutcome(error="the Ray worker runs other head-roles code than the driver (install the same version)")
    try:
        run, identity = score_model(spec, corpus, settings, tokenizer=tokenizer, progress=False)
    except Exception as err:
        return TaskOutcome(error=one_line(err))
    return TaskOutcome(run, identity)


def score_on_ray(
    specs: Mapping[int, ModelSpec], corpus, settings: ScoreSettings, *, address: str = LOCAL,
    tokenizer: str | None = None, log: Callable[[str], None] = lambda message: None,
) -> Iterator[tuple[int, TaskOutcome]]:
    """One Ray task per model; yields (its key in `specs`, its outcome) as tasks finish. A task
    whose worker died is an outcome with an error: the others go on."""
    with ray_session(address) as ray:
        resources = ray.cluster_resources()
        gpus = resources.get("GPU", 0)
        per_task = 1 if gpus >= 1 and settings.device != "cpu" else 0
        # No retries: a model that fails once is listed as failed, as with --jobs.
        task = ray.remote(num_gpus=per_task, max_retries=0)(score_task)
        shared = ray.put(corpus)  # sent to the object store once, not once per task
        code = code_identity()  # reads and hashes every module the pipeline imports: once, not once per task
        futures = {task.remote(spec, shared, settings, tokenizer, code): k for k, spec in specs.items()}
        log(f"scoring {len(futures)} model(s) as Ray tasks ({'one GPU' if per_task else 'CPU only'} each; "
            f"cluster: {resources.get('CPU', 0):g} CPUs, {gpus:g} GPUs)")
        pending = list(futures)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                try:
                    outcome = ray.get(ref)
                except Exception as err:  # the worker died (out of memory, a lost node)
                    outcome = TaskOutcome(error=one_line(err))
                yield futures[ref], outcome
