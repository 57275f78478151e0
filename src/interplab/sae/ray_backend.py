"""``interplab sae collect --backend ray``: the missing shards of the plan become a Ray dataset, and
an actor pool (each actor loads the model, the SAE and the corpus once) collects them into the same
database layout on a filesystem every node can reach. The driver then merges.

``ray`` is an optional dependency (``pip install 'interplab[ray]'``).
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

from interplab.common.errors import InterplabError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0


def _reachable(address: str) -> bool:
    """Whether a ``host:port`` (or ``ray://host:port``) address accepts a TCP connection."""
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return True  # "auto", "local" … are Ray's to resolve
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            return True
    except OSError:
        return False


def connect(address: str | None, num_cpus: int | None = None) -> Any:
    """``ray.init`` on ``address`` (a local instance when None), or a one-line error."""
    try:
        import ray
    except ImportError as exc:
        raise InterplabError("--backend ray needs the ray package: pip install 'interplab[ray]'") from exc
    if ray.is_initialized():
        return ray
    if address is not None and not _reachable(address):
        raise InterplabError(
            f"--ray-address {address}: no Ray cluster answers there (connection refused or timed out)"
        )
    try:
        if address is None:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InterplabError(f"--ray-address {address}: cannot connect to Ray ({first})") from exc
    return ray


class ShardActor:
    """One Ray actor: model, SAE and corpus loaded once, then any shard of the plan on demand."""

    def __init__(self, config: dict[str, Any]) -> None:
        from interplab.sae.launch import CollectConfig, build_analyzer, prepare
        from interplab.sae.merge import worker_context

        cfg = CollectConfig(**config)
        device = "cuda:0" if cfg.device.startswith("cuda") else "cpu"  # Ray sets CUDA_VISIBLE_DEVICES
        an = build_analyzer(cfg, device)
        self.setup = prepare(an, cfg, clear=False)
        self.ctx = worker_context(an, self.setup, device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from interplab.sae.shard_worker import collect_shards

        specs = [self.setup.specs[int(i)] for i in batch["index"]]
        res = collect_shards(self.ctx, specs, "ray shard")
        return {
            "index": np.asarray(batch["index"]),
            "seconds": np.full(len(specs), res.seconds / max(len(specs), 1)),
        }


def run_collect_ray(cfg: Any) -> Any:
    """Collect the missing shards with a Ray Data actor pool, then merge on the driver."""
    from interplab.sae.launch import CollectResult, build_analyzer, prepare
    from interplab.sae.merge import ensure_units, merge_into

    t0 = time.perf_counter()
    ray = connect(cfg.ray_address, num_cpus=None)
    an = build_analyzer(cfg, "cpu")
    setup = prepare(an, cfg, clear=True)
    todo = setup.missing()
    skipped = sorted(set(range(len(setup.specs))) - set(todo))
    if todo:
        import ray.data

        config = dataclasses.asdict(cfg) | {"overwrite": False}
        ds = ray.data.from_items([{"index": i} for i in todo], override_num_blocks=len(todo))
        done = ds.map_batches(
            ShardActor,
            fn_constructor_kwargs={"config": config},
            batch_size=1,
            concurrency=min(int(cfg.workers), len(todo)),
            num_gpus=float(cfg.num_gpus_per_worker),
            num_cpus=1,
        ).take_all()
        log.info("ray: %d shards collected", len(done))
    setup.write_manifest()
    ensure_units(an, setup)
    missing = setup.missing()
    analysis = None
    if cfg.merge and not missing:
        merge_into(an, setup)
        analysis = an.run()
    return CollectResult(
        out=Path(cfg.out),
        n_shards=len(setup.specs),
        collected=todo,
        skipped=skipped,
        missing=missing,
        seconds=time.perf_counter() - t0,
        analysis=analysis,
    )
