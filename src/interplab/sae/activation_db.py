"""The activation database: every non-zero SAE activation of a corpus, as Parquet shards.

Layout of ``activation_database/`` (all readable by DuckDB, pandas or pyarrow)::

    manifest.json                 schema, config fingerprint, the list of complete shards
    activations/part-00000.parquet   token_idx int64, feature int32, value float32
    tokens/part-00000.parquet        token_idx int64, text_idx int64, position int32,
                                     token_id int32, token_str string
    state/part-00000.npz          accumulator snapshot after that shard (used to resume)

One activation row per (token, feature) with a non-zero activation; inside a shard the rows are
sorted by (feature, token_idx) so per-feature queries skip most row groups. ``token_idx`` numbers the
corpus' text tokens (no padding, no special tokens) from 0 in window order, so the tokens of one
text are consecutive. A shard covers a contiguous range of windows; it is written atomically and
only becomes part of the database once ``manifest.json`` (rewritten atomically) lists it, so an
interrupted run leaves complete shards only and the next run with the same fingerprint resumes
after the last listed shard.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from interplab.common.atomic import atomic_path, write_json
from interplab.common.errors import InterplabError, require
from interplab.sae.layout import DATABASE, DB_MANIFEST, DB_SUBFOLDERS, db_shard_paths

log = logging.getLogger(__name__)

DB_FORMAT = "interplab-activation-db"
DB_VERSION = 1
MANIFEST = DB_MANIFEST
ROW_GROUP_ROWS = 65_536  # activation rows are sorted by (feature, token_idx) inside a shard, so a
# query for one feature reads only the row groups whose min/max feature statistics include it

ACTIVATIONS_SCHEMA = pa.schema([("token_idx", pa.int64()), ("feature", pa.int32()), ("value", pa.float32())])
# activation rows are sorted by (feature, token_idx): delta-encoded integers compress better and
# write ~2.5× faster than dictionary pages (which rarely apply to token_idx / value anyway)
ACTIVATIONS_WRITE_OPTIONS: dict[str, Any] = {
    "use_dictionary": False,
    "column_encoding": {"token_idx": "DELTA_BINARY_PACKED", "feature": "DELTA_BINARY_PACKED"},
}
TOKENS_SCHEMA = pa.schema(
    [
        ("token_idx", pa.int64()),
        ("text_idx", pa.int64()),
        ("position", pa.int32()),
        ("token_id", pa.int32()),
        ("token_str", pa.string()),
    ]
)


def schema_dict(schema: pa.Schema) -> dict[str, str]:
    """``{column: type}`` of a pyarrow schema, for the manifest."""
    return {f.name: str(f.type) for f in schema}


@dataclasses.dataclass
class Shard:
    """One complete shard: which windows and tokens it covers and its files."""

    index: int
    window_start: int
    window_end: int
    token_start: int
    token_end: int
    n_rows: int
    activations: str
    tokens: str
    state: str | None = None

    @property
    def n_tokens(self) -> int:
        return self.token_end - self.token_start


def shard_name(index: int) -> str:
    return f"part-{index:05d}"


class ActivationDBWriter:
    """Writes shards and the manifest; resumes a database built with the same fingerprint.

    ``write_shard`` is the only place data reaches the disk, so a failure there (disk full,
    injected error in tests) leaves every earlier shard listed and intact.
    """

    def __init__(
        self,
        path: str | Path,
        fingerprint: dict[str, Any],
        n_windows: int,
        d_sae: int,
        overwrite: bool = False,
    ) -> None:
        self.path = Path(path)
        self.fingerprint = json.loads(json.dumps(fingerprint, default=str))
        self.n_windows = int(n_windows)
        self.d_sae = int(d_sae)
        self.shards: list[Shard] = []
        manifest_path = self.path / MANIFEST
        if manifest_path.exists() and not overwrite:
            manifest = read_manifest(self.path)
            if manifest.get("fingerprint") != self.fingerprint:
                old = manifest.get("fingerprint") or {}
                differs = sorted(
                    k for k in set(old) | set(self.fingerprint) if old.get(k) != self.fingerprint.get(k)
                )
                raise InterplabError(
                    f"{self.path}: an activation database built with a different configuration is "
                    f"already here (differs in: {', '.join(differs)}); use another --out folder or "
                    "pass --overwrite"
                )
            self.shards = [Shard(**s) for s in manifest.get("shards", [])]
        elif overwrite and self.path.exists():
            self._clear()
        self._remove_orphans()

    # -- state -----------------------------------------------------------------------------------
    @property
    def windows_done(self) -> int:
        return self.shards[-1].window_end if self.shards else 0

    @property
    def tokens_done(self) -> int:
        return self.shards[-1].token_end if self.shards else 0

    @property
    def complete(self) -> bool:
        return self.windows_done >= self.n_windows

    def _clear(self) -> None:
        for sub in DB_SUBFOLDERS:
            folder = self.path / sub
            if folder.is_dir():
                for f in folder.iterdir():
                    if f.is_file():
                        f.unlink()
        (self.path / MANIFEST).unlink(missing_ok=True)

    def _remove_orphans(self) -> None:
        """Delete shard files that no manifest entry lists (left by an interrupted run)."""
        listed = {s.activations for s in self.shards} | {s.tokens for s in self.shards}
        listed |= {s.state for s in self.shards if s.state}
        for sub in DB_SUBFOLDERS:
            folder = self.path / sub
            if not folder.is_dir():
                continue
            for f in folder.iterdir():
                rel = f"{sub}/{f.name}"
                if f.is_file() and rel not in listed:
                    log.info("removing incomplete shard file %s", f)
                    f.unlink()

    # -- writing ---------------------------------------------------------------------------------
    def _write_table(self, rel: str, table: pa.Table) -> None:
        target = self.path / rel
        options = ACTIVATIONS_WRITE_OPTIONS if table.schema.equals(ACTIVATIONS_SCHEMA) else {}
        with atomic_path(target) as tmp:
            pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP_ROWS, **options)

    def write_shard(
        self,
        window_end: int,
        activations: pa.Table,
        tokens: pa.Table,
        state: dict[str, np.ndarray] | None = None,
    ) -> Shard:
        """Write one shard (activations, tokens, optional state) and commit it in the manifest."""
        index = len(self.shards)
        name = shard_name(index)
        token_start = self.tokens_done
        n_tokens = tokens.num_rows
        shard = Shard(
            index=index,
            window_start=self.windows_done,
            window_end=int(window_end),
            token_start=token_start,
            token_end=token_start + n_tokens,
            n_rows=activations.num_rows,
            **db_shard_paths(name, with_state=state is not None),  # type: ignore[arg-type]
        )
        self._write_table(shard.activations, activations)
        self._write_table(shard.tokens, tokens)
        if state is not None:
            with atomic_path(self.path / shard.state) as tmp, tmp.open("wb") as fh:
                np.savez(fh, **state)
        self.shards.append(shard)
        self.write_manifest()
        # the previous snapshot is superseded once the manifest lists the new one
        if index > 0 and self.shards[index - 1].state:
            (self.path / self.shards[index - 1].state).unlink(missing_ok=True)
            self.shards[index - 1].state = None
            self.write_manifest()
        return shard

    def write_manifest(self) -> Path:
        n_rows = sum(s.n_rows for s in self.shards)
        return write_json(
            self.path / MANIFEST,
            {
                "format": DB_FORMAT,
                "version": DB_VERSION,
                "complete": self.complete,
                "fingerprint": self.fingerprint,
                "d_sae": self.d_sae,
                "n_windows": self.n_windows,
                "windows_done": self.windows_done,
                "n_tokens": self.tokens_done,
                "n_rows": n_rows,
                "schema": {
                    "activations": schema_dict(ACTIVATIONS_SCHEMA),
                    "tokens": schema_dict(TOKENS_SCHEMA),
                },
                "shards": [dataclasses.asdict(s) for s in self.shards],
            },
        )

    def load_state(self) -> dict[str, np.ndarray] | None:
        """The accumulator snapshot stored with the last complete shard, if any."""
        if not self.shards or not self.shards[-1].state:
            return None
        with np.load(self.path / self.shards[-1].state, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The database manifest, or a one-line error."""
    p = Path(path) / MANIFEST
    require(p.exists(), f"{Path(path)}: not an activation database (no {MANIFEST})")
    try:
        manifest = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InterplabError(f"{p}: malformed JSON ({exc.msg} at line {exc.lineno})") from exc
    require(
        manifest.get("format") == DB_FORMAT,
        f"{p}: not an interplab activation database manifest (format {manifest.get('format')!r})",
    )
    return manifest


def iter_shard_tables(
    path: str | Path, shards: list[Shard], kind: str = "activations", columns: list[str] | None = None
):
    """Yield ``(shard, pyarrow.Table)`` for each shard, one at a time (bounded memory)."""
    root = Path(path)
    for shard in shards:
        rel = shard.activations if kind == "activations" else shard.tokens
        yield shard, pq.read_table(root / rel, columns=columns)


class ActivationDatabase:
    """Read-only queries over an activation database, answered by DuckDB over the Parquet files
    (nothing is loaded into memory beyond each query's result)."""

    def __init__(self, path: str | Path) -> None:
        import duckdb

        self.path = Path(path)
        if (self.path / DATABASE / MANIFEST).exists():  # an analysis folder
            self.path = self.path / DATABASE
        self.manifest = read_manifest(self.path)
        self.shards = [Shard(**s) for s in self.manifest.get("shards", [])]
        require(bool(self.shards), f"{self.path}: the activation database has no complete shard")
        self.con = duckdb.connect(config={"threads": "2", "memory_limit": "512MB"})
        act = [str(self.path / s.activations) for s in self.shards]
        tok = [str(self.path / s.tokens) for s in self.shards]
        self.con.execute(f"CREATE VIEW activations AS SELECT * FROM read_parquet({act!r})")
        self.con.execute(f"CREATE VIEW tokens AS SELECT * FROM read_parquet({tok!r})")

    @property
    def n_tokens(self) -> int:
        return int(self.shards[-1].token_end)

    @property
    def d_sae(self) -> int:
        return int(self.manifest["d_sae"])

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> ActivationDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, sql: str, params: list[Any] | None = None):
        """Run SQL over the views ``activations`` and ``tokens``; returns a pandas DataFrame."""
        return self.con.execute(sql, params or []).df()

    def _check_feature(self, feature: int) -> int:
        feature = int(feature)
        require(0 <= feature < self.d_sae, f"feature {feature} out of range 0..{self.d_sae - 1}")
        return feature

    def _check_token(self, token_idx: int) -> int:
        token_idx = int(token_idx)
        require(0 <= token_idx < self.n_tokens, f"token_idx {token_idx} out of range 0..{self.n_tokens - 1}")
        return token_idx

    def get_feature_activations(self, feature: int, top_k: int | None = 20):
        """The ``top_k`` largest activations of ``feature`` (all when None) with their tokens:
        columns token_idx, value, text_idx, position, token_id, token_str (value desc, token asc)."""
        feature = self._check_feature(feature)
        limit = "" if top_k is None else f"LIMIT {int(top_k)}"
        return self.query(
            "SELECT a.token_idx, a.value, t.text_idx, t.position, t.token_id, t.token_str "
            "FROM (SELECT token_idx, value FROM activations WHERE feature = ? "
            f"ORDER BY value DESC, token_idx ASC {limit}) a "
            "JOIN tokens t USING (token_idx) ORDER BY a.value DESC, a.token_idx ASC",
            [feature],
        )

    def get_token_activations(self, token_idx: int, threshold: float = 0.0):
        """Features active on one token with value > ``threshold``: columns feature, value (desc)."""
        token_idx = self._check_token(token_idx)
        return self.query(
            "SELECT feature, value FROM activations WHERE token_idx = ? AND value > ? "
            "ORDER BY value DESC, feature ASC",
            [token_idx, float(threshold)],
        )

    def get_token_context(self, token_idx: int, context_size: int = 10):
        """Tokens of the same text within ``context_size`` positions of ``token_idx``: columns
        token_idx, text_idx, position, token_id, token_str, is_target."""
        token_idx = self._check_token(token_idx)
        r = max(0, int(context_size))
        return self.query(
            "WITH target AS (SELECT text_idx, token_idx AS tidx FROM tokens WHERE token_idx = ?) "
            "SELECT t.token_idx, t.text_idx, t.position, t.token_id, t.token_str, "
            "t.token_idx = target.tidx AS is_target FROM tokens t, target "
            "WHERE t.token_idx BETWEEN ? AND ? AND t.text_idx = target.text_idx ORDER BY t.token_idx",
            [token_idx, token_idx - r, token_idx + r],
        )

    def get_context_activations(self, token_idx: int, feature: int, context_size: int = 10):
        """:meth:`get_token_context` plus the column ``value``: ``feature``'s activation on each
        context token (0 where it does not fire) — what a viewer shades."""
        feature = self._check_feature(feature)
        ctx = self.get_token_context(token_idx, context_size)
        lo, hi = int(ctx["token_idx"].min()), int(ctx["token_idx"].max())
        vals = self.query(
            "SELECT token_idx, value FROM activations WHERE feature = ? AND token_idx BETWEEN ? AND ?",
            [feature, lo, hi],
        )
        ctx = ctx.merge(vals, on="token_idx", how="left")
        ctx["value"] = ctx["value"].fillna(0.0).astype("float32")
        return ctx
