"""The shard plan of an activation database and the files that say which shards are complete.

A *shard* is a contiguous range of corpus windows. The plan cuts the windows exactly as the
one-process collection does: batches of ``batch_size`` windows from window 0, and a shard ends after
the first batch that brings it to ``shard_tokens`` text tokens (the last shard takes the rest). It is
a pure function of the tokenised corpus and ``(batch_size, shard_tokens)``, so every worker computes
the same plan, any worker can collect any shard, and collecting a shard twice writes the same bytes.

Files of a database collected shard by shard (beside the ``activations/`` and ``tokens/`` Parquet
files of :mod:`interplab.sae.activation_db`)::

    shards/part-00000.json     the shard's record: its range, row count, files, fingerprint — written
                               last, so a shard is complete exactly when its record exists
    partials/part-00000.npz    the shard's mergeable partial statistics (:mod:`interplab.sae.partials`)

``manifest.json`` is rebuilt from the records (complete shards in index order, the missing ones
named), so a worker that dies leaves its shards unlisted and nothing else to repair.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from interplab.common.atomic import write_json
from interplab.common.data import read_json
from interplab.common.errors import InterplabError, require
from interplab.sae.activation_db import (
    ACTIVATIONS_SCHEMA,
    DB_FORMAT,
    DB_VERSION,
    MANIFEST,
    TOKENS_SCHEMA,
    read_manifest,
    schema_dict,
    shard_name,
)
from interplab.sae.layout import DB_PARTIALS, DB_RECORDS

PLAN_VERSION = 1
RECORDS = DB_RECORDS
PARTIALS = DB_PARTIALS


@dataclasses.dataclass(frozen=True)
class ShardSpec:
    """One planned shard: windows ``window_start:window_end`` holding tokens ``token_start:token_end``."""

    index: int
    window_start: int
    window_end: int
    token_start: int
    token_end: int

    @property
    def n_tokens(self) -> int:
        return self.token_end - self.token_start

    @property
    def name(self) -> str:
        return shard_name(self.index)


def window_token_counts(positions_or_mask: Any) -> np.ndarray:
    """Text tokens per window from ``TokenWindows.positions`` (``≥ 0`` counts) as int64."""
    arr = np.asarray(positions_or_mask)
    return (arr >= 0).sum(axis=1).astype(np.int64)


def plan_shards(
    window_tokens: Sequence[int] | np.ndarray, batch_size: int, shard_tokens: int
) -> list[ShardSpec]:
    """Cut windows with ``window_tokens[i]`` text tokens into shards (see module docstring)."""
    require(int(batch_size) >= 1, f"--batch-size must be ≥ 1, got {batch_size}")
    require(int(shard_tokens) >= 1, f"--shard-tokens must be ≥ 1, got {shard_tokens}")
    counts = np.asarray(window_tokens, dtype=np.int64)
    n = counts.size
    b = int(batch_size)
    batch_tokens = np.add.reduceat(counts, np.arange(0, n, b)) if n else np.empty(0, np.int64)
    specs: list[ShardSpec] = []
    w0 = t0 = 0
    acc = 0
    for i, bt in enumerate(batch_tokens.tolist()):
        acc += bt
        if acc >= shard_tokens:
            w1 = min(n, (i + 1) * b)
            specs.append(ShardSpec(len(specs), w0, w1, t0, t0 + acc))
            w0, t0, acc = w1, t0 + acc, 0
    if acc or not specs:
        specs.append(ShardSpec(len(specs), w0, n, t0, t0 + acc))
    return specs


def plan_digest(specs: Sequence[ShardSpec]) -> str:
    """A short hash of the plan (stored with each record: a worker with another plan is refused)."""
    h = hashlib.sha256(json.dumps([dataclasses.astuple(s) for s in specs]).encode())
    return h.hexdigest()[:16]


_SHARD_ARG = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard_arg(text: str) -> tuple[int, int]:
    """``"i/N"`` → ``(i, N)`` with ``0 ≤ i < N``, or a one-line error naming ``--shard``."""
    m = _SHARD_ARG.match(str(text))
    if m is None:
        raise InterplabError(f"--shard: expected i/N with integers 0 ≤ i < N (e.g. 0/4), got {text!r}")
    i, n = int(m.group(1)), int(m.group(2))
    require(n >= 1, f"--shard: N must be ≥ 1, got {text!r}")
    require(i < n, f"--shard: i must be < N (workers are numbered 0 … N−1), got {text!r}")
    return i, n


def assigned(specs: Sequence[ShardSpec], worker: int, n_workers: int) -> list[ShardSpec]:
    """The shards of worker ``worker`` of ``n_workers``: indices ``worker, worker + n_workers, …``."""
    return [s for s in specs if s.index % n_workers == worker]


def plan_table(specs: Sequence[ShardSpec]) -> list[list[int]]:
    """``[window_start, window_end, token_start, token_end]`` of every shard, in index order."""
    return [[s.window_start, s.window_end, s.token_start, s.token_end] for s in specs]


def stored_plan(manifest: dict[str, Any]) -> list[ShardSpec] | None:
    """The shard plan stored in a manifest (None for databases written before it was stored); a table
    that does not hash to the plan's digest is refused."""
    table = (manifest.get("plan") or {}).get("table")
    if table is None:
        return None
    specs = [ShardSpec(i, *map(int, row)) for i, row in enumerate(table)]
    require(
        plan_digest(specs) == manifest["plan"]["params"]["digest"],
        "activation database manifest: plan.table does not match plan.params.digest (edited by hand?)",
    )
    return specs


# -- records and manifest --------------------------------------------------------------------------
def record_path(db: Path, index: int) -> Path:
    return Path(db) / RECORDS / f"{shard_name(index)}.json"


def partial_rel(index: int) -> str:
    return f"{PARTIALS}/{shard_name(index)}.npz"


def read_record(db: Path, index: int) -> dict[str, Any] | None:
    """The record of shard ``index`` if it is complete (its record exists and parses)."""
    p = record_path(db, index)
    if not p.exists():
        return None
    try:
        return read_json(p)
    except InterplabError as exc:
        raise InterplabError(f"{exc} (a shard record: delete it to recollect the shard)") from exc


def differing_fields(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Keys whose values differ between two fingerprints."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def is_sharded(db: Path) -> bool:
    """Whether ``db`` holds a database written shard by shard (its manifest has a ``plan``)."""
    p = Path(db) / MANIFEST
    if not p.exists():
        return False
    return "plan" in read_manifest(db)


def check_compatible(db: Path, fingerprint: dict[str, Any], plan: dict[str, Any]) -> None:
    """Refuse a database written with another configuration, naming the differing fields."""
    if not (Path(db) / MANIFEST).exists():
        return
    manifest = read_manifest(db)
    if "plan" not in manifest:
        raise InterplabError(
            f"{db}: an activation database written by a one-process `sae analyze` is here; use another "
            "--out folder or pass --overwrite"
        )
    differs = differing_fields(manifest.get("fingerprint") or {}, fingerprint)
    differs += [
        f"plan.{k}" for k in differing_fields(manifest["plan"].get("params") or {}, plan.get("params") or {})
    ]
    if differs:
        raise InterplabError(
            f"{db}: an activation database built with a different configuration is already here "
            f"(differs in: {', '.join(differs)}); use another --out folder or pass --overwrite"
        )


def write_sharded_manifest(
    db: Path,
    fingerprint: dict[str, Any],
    plan: dict[str, Any],
    specs: Sequence[ShardSpec],
    d_sae: int,
    n_windows: int,
    config: dict[str, Any],
    corpus: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Rebuild ``manifest.json`` from the shard records on disk and return it. The plan's table of
    every shard and the corpus summary let a merge run without tokenising the corpus."""
    db = Path(db)
    done, missing = [], []
    for s in specs:
        rec = read_record(db, s.index)
        if rec is None:
            missing.append(s.index)
            continue
        done.append(
            {
                k: rec[k]
                for k in (
                    "index",
                    "window_start",
                    "window_end",
                    "token_start",
                    "token_end",
                    "n_rows",
                    "activations",
                    "tokens",
                )
            }
            | {"state": None}
        )
    complete = not missing
    manifest = {
        "format": DB_FORMAT,
        "version": DB_VERSION,
        "complete": complete,
        "fingerprint": json.loads(json.dumps(fingerprint, default=str)),
        "d_sae": int(d_sae),
        "n_windows": int(n_windows),
        "windows_done": int(sum(d["window_end"] - d["window_start"] for d in done)),
        "n_tokens": int(sum(d["token_end"] - d["token_start"] for d in done)),
        "n_rows": int(sum(d["n_rows"] for d in done)),
        "schema": {"activations": schema_dict(ACTIVATIONS_SCHEMA), "tokens": schema_dict(TOKENS_SCHEMA)},
        "shards": done,
        "plan": {**plan, "n_shards": len(specs), "missing": missing, "table": plan_table(specs)},
        "corpus": corpus,
        "collect": config,
    }
    write_json(db / MANIFEST, manifest)
    return manifest


def plan_record(
    specs: Sequence[ShardSpec], batch_size: int, shard_tokens: int, **partial_params: int
) -> dict[str, Any]:
    """The ``plan`` entry of the manifest. ``params`` (the plan and what shapes the partials, e.g.
    ``top_k``) must match for workers to share a database."""
    return {
        "version": PLAN_VERSION,
        "params": {
            "batch_size": int(batch_size),
            "shard_tokens": int(shard_tokens),
            **{k: int(v) for k, v in partial_params.items()},
            "digest": plan_digest(specs),
        },
        "rule": "batches of batch_size windows from window 0; a shard ends after the first batch that "
        "brings it to shard_tokens text tokens; the last shard takes the rest",
    }


def missing_token_ranges(specs: Sequence[ShardSpec], missing: Sequence[int]) -> list[list[int]]:
    """``[token_start, token_end)`` of the missing shards, adjacent ranges joined."""
    out: list[list[int]] = []
    for i in sorted(missing):
        s = specs[i]
        if out and out[-1][1] == s.token_start:
            out[-1][1] = s.token_end
        else:
            out.append([s.token_start, s.token_end])
    return out
