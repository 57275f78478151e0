"""Merge a database collected shard by shard into the analysis folder ``sae analyze`` writes.

:func:`merge_collection` reduces the partial statistics of the complete shards in shard order
(:class:`interplab.sae.partials.PartialReducer`) into the accumulators of a one-process collection;
the rest of the analysis (matrices, summaries, plots, report, browser input) is then written by
the same code as ``sae analyze``. :func:`run_merge` is ``interplab sae merge``.
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from interplab.common.errors import InterplabError, one_of, require
from interplab.common.progress import track
from interplab.sae.ablation import (
    ablation_on_subset,
    load_ablation_unit,
    most_frequent_features,
    save_ablation_unit,
)
from interplab.sae.activation_db import MANIFEST, read_manifest
from interplab.sae.collect import CollectionResult
from interplab.sae.hooks import hook_point_named
from interplab.sae.layout import ABLATION_UNIT, DATABASE
from interplab.sae.partials import PartialReducer, load_partial
from interplab.sae.shards import (
    ShardSpec,
    check_compatible,
    differing_fields,
    missing_token_ranges,
    plan_record,
    plan_shards,
    read_record,
    stored_plan,
    window_token_counts,
    write_sharded_manifest,
)
from interplab.sae.stats import QuantileExamples
from interplab.sae.summaries import load_logit_unit, model_logit_unit, save_logit_unit

if TYPE_CHECKING:
    from interplab.sae.analyzer import AnalysisResult, SAEAnalyzer
    from interplab.sae.shard_worker import WorkerContext

log = logging.getLogger(__name__)


@dataclasses.dataclass
class ShardedSetup:
    """The plan and identity of one sharded database, as an analyzer computes them."""

    db: Path
    specs: list[ShardSpec]
    fingerprint: dict[str, Any]
    plan: dict[str, Any]
    config: dict[str, Any]
    d_sae: int
    n_windows: int
    corpus: dict[str, Any] | None = None

    def write_manifest(self) -> dict[str, Any]:
        return write_sharded_manifest(
            self.db,
            self.fingerprint,
            self.plan,
            self.specs,
            self.d_sae,
            self.n_windows,
            self.config,
            corpus=self.corpus,
        )

    def missing(self) -> list[int]:
        return [s.index for s in self.specs if read_record(self.db, s.index) is None]


def sharded_setup(an: SAEAnalyzer) -> ShardedSetup:
    """Plan, fingerprint and stored configuration of the analyzer's database."""
    if an.windows is None:
        an.load_data()
    assert an.windows is not None and an.windows.positions is not None
    specs = plan_shards(window_token_counts(an.windows.positions), an.cfg.batch_size, an.cfg.shard_tokens)
    config = {k: v for k, v in dataclasses.asdict(an.cfg).items() if k not in ("analysis_dir", "overwrite")}
    return ShardedSetup(
        db=an.out / DATABASE,
        specs=specs,
        fingerprint=an.fingerprint(),
        plan=plan_record(
            specs,
            an.cfg.batch_size,
            an.cfg.shard_tokens,
            top_k=an.cfg.top_k,
            examples_per_quantile=an.cfg.examples_per_quantile,
            cooccurrence_dense_limit=an.cfg.cooccurrence_dense_limit,
        ),
        config=config,
        d_sae=an.sae.d_sae,
        n_windows=an.windows.n_windows,
        corpus=an.windows.summary(),
    )


def stored_setup(an: SAEAnalyzer, manifest: dict[str, Any]) -> ShardedSetup | None:
    """The setup as the collecting workers stored it in the manifest, so that a merge neither loads
    the model nor tokenises the corpus; None for a database written before the plan was stored."""
    specs = stored_plan(manifest)
    if specs is None:
        return None
    plan = {k: v for k, v in manifest["plan"].items() if k not in ("n_shards", "missing", "table")}
    return ShardedSetup(
        db=an.out / DATABASE,
        specs=specs,
        fingerprint=manifest["fingerprint"],
        plan=plan,
        config=dict(manifest["collect"]),
        d_sae=int(manifest["d_sae"]),
        n_windows=int(manifest["n_windows"]),
        corpus=manifest.get("corpus"),
    )


def worker_context(an: SAEAnalyzer, setup: ShardedSetup, device: Any = "cpu") -> WorkerContext:
    import torch

    from interplab.sae.shard_worker import WorkerContext

    assert an.windows is not None
    return WorkerContext(
        an.loaded,
        an.hp,
        an.sae,
        an.windows,
        setup.db,
        setup.fingerprint,
        setup.plan["params"],
        torch.device(device),
    )


def fill_command(db: Path, config: dict[str, Any]) -> str:
    """The ``interplab sae collect`` command that fills the missing shards of ``db``."""
    args = [
        "interplab", "sae", "collect",
        "--sae", str(config["sae_path"]),
        "--out", str(Path(db).parent),
        "--model", str(config["model_name"]),
    ]  # fmt: skip
    if config.get("layer") is not None:
        args += ["--layer", str(config["layer"])]
    if config.get("hook_name"):
        args += ["--hook", str(config["hook_name"])]
    args += ["--data", str(config["data_path"]), "--batch-size", str(config["batch_size"])]
    args += ["--context-size", str(config["context_size"]), "--shard-tokens", str(config["shard_tokens"])]
    if config.get("max_tokens") is not None:
        args += ["--max-tokens", str(config["max_tokens"])]
    args += ["--top-k", str(config["top_k"]), "--sae-dtype", str(config["dtype"])]
    args += ["--ablation-tokens", str(config["ablation_tokens"])]
    args += ["--ablation-features", str(config["ablation_features"])]
    if config.get("model_dtype", "float32") != "float32":
        args += ["--model-dtype", str(config["model_dtype"])]
    return shlex.join(args)


def check_records(setup: ShardedSetup) -> list[ShardSpec]:
    """The complete shards, after checking each record against the database's fingerprint and plan."""
    complete = []
    for spec in setup.specs:
        rec = read_record(setup.db, spec.index)
        if rec is None:
            continue
        differs = differing_fields(rec.get("fingerprint") or {}, setup.fingerprint)
        _refuse_record(setup, spec, differs, "a different configuration")
        differs = [f"plan.{k}" for k in differing_fields(rec.get("plan") or {}, setup.plan["params"])]
        if (rec["token_start"], rec["token_end"]) != (spec.token_start, spec.token_end):
            differs.append("token range")
        _refuse_record(setup, spec, differs, "another shard plan")
        complete.append(spec)
    return complete


def _refuse_record(setup: ShardedSetup, spec: ShardSpec, differs: list[str], what: str) -> None:
    if differs:
        raise InterplabError(
            f"{setup.db}: shard {spec.index} was collected with {what} "
            f"(differs in: {', '.join(differs)}); delete {DATABASE}/shards/{spec.name}.json to recollect it"
        )


def merge_collection(an: SAEAnalyzer, setup: ShardedSetup, allow_partial: bool = False) -> CollectionResult:
    """Reduce the partials of the complete shards (in shard order) into a :class:`CollectionResult`."""
    t0 = time.perf_counter()
    complete = check_records(setup)
    missing = sorted({s.index for s in setup.specs} - {s.index for s in complete})
    if missing and not allow_partial:
        ranges = missing_token_ranges(setup.specs, missing)
        raise InterplabError(
            f"{setup.db}: {len(missing)} of {len(setup.specs)} shards are missing "
            f"(ids {_id_list(missing)}; tokens {', '.join(f'{a}–{b}' for a, b in ranges)}); fill them with: "
            f"{fill_command(setup.db, setup.config)} — or pass --allow-partial"
        )
    require(bool(complete), f"{setup.db}: no complete shard to merge")
    setup.write_manifest()
    cfg = an.cfg
    red = PartialReducer(
        an.sae.d_sae, an.sae.d_in, cfg.top_k, cfg.cooccurrence_dense_limit, cfg.examples_per_quantile
    )
    for spec in track(complete, "merging shard statistics"):
        red.add(load_partial(setup.db / f"partials/{spec.name}.npz"))
    quant = QuantileExamples(red.fstats, per_quantile=cfg.examples_per_quantile)
    quant.update(*red.cand)
    rows = read_manifest(setup.db)["n_rows"]
    log.info("merged %d shards (%d rows) in %.2fs", len(complete), rows, time.perf_counter() - t0)
    return CollectionResult(
        feature_stats=red.fstats,
        cooccurrence=red.co,
        sparsity=red.sparsity,
        reconstruction=red.reconstruction,
        db_path=setup.db,
        n_tokens=int(red.fstats.n_tokens),
        n_shards=len(complete),
        resumed_shards=len(complete),
        seconds=time.perf_counter() - t0,
        quantiles=quant,
        missing_token_ranges=missing_token_ranges(setup.specs, missing),
    )


def merged_feature_counts(setup: ShardedSetup, specs: list[ShardSpec]) -> np.ndarray:
    """Per-feature firing counts over ``specs``: the sum of their partials' ``fstats.count``."""
    total = np.zeros(setup.d_sae, dtype=np.int64)
    for spec in specs:
        path = setup.db / f"partials/{spec.name}.npz"
        try:
            with np.load(path, allow_pickle=False) as z:
                total += z["fstats.count"]
        except (OSError, ValueError, KeyError) as exc:
            raise InterplabError(
                f"{path}: unreadable partial statistics ({exc}); delete the shard's record to recollect it"
            ) from exc
    return total


def ablation_key(an: SAEAnalyzer, setup: ShardedSetup, count: np.ndarray) -> dict[str, Any]:
    """What the ablation sections depend on: the database, the subset, the features, the convention."""
    return {
        "fingerprint": setup.fingerprint,
        "plan": setup.plan["params"],
        "ablation_tokens": int(an.cfg.ablation_tokens),
        "features": most_frequent_features(count, an.cfg.ablation_features),
        "eval_convention": an.cfg.eval_convention,
    }


def ensure_units(an: SAEAnalyzer, setup: ShardedSetup) -> bool:
    """Compute and store the database's units once every shard is complete (any worker may;
    computing them again writes the same content): the logit effects, and the ablation sections
    unless the SAE is a transcoder (whose sections the merge computes). False while shards are missing."""
    if setup.missing():
        return False
    if load_logit_unit(setup.db, setup.fingerprint) is None:
        save_logit_unit(setup.db, setup.fingerprint, model_logit_unit(an.loaded, an.sae.W_dec))
    if an.sae.cfg.hook_name_out:
        return False
    count = merged_feature_counts(setup, setup.specs)
    key = ablation_key(an, setup, count)
    if load_ablation_unit(setup.db, key) is not None:
        return True
    assert an.windows is not None
    t0 = time.perf_counter()
    result = ablation_on_subset(
        an.loaded,
        an.hp,
        an.sae,
        an.windows,
        an.cfg.batch_size,
        an.cfg.ablation_tokens,
        key["features"],
        convention=an.cfg.eval_convention,
    )
    save_ablation_unit(setup.db, key, result)
    log.info("ablation unit computed in %.2fs", time.perf_counter() - t0)
    return True


def stored_ablation(an: SAEAnalyzer, setup: ShardedSetup, col: CollectionResult) -> dict[str, Any] | None:
    """The stored ablation sections matching this merge (its features come from the merged counts)."""
    if an.sae.cfg.hook_name_out:
        return None
    return load_ablation_unit(setup.db, ablation_key(an, setup, col.feature_stats.count))


def merge_into(an: SAEAnalyzer, setup: ShardedSetup, allow_partial: bool = False) -> CollectionResult:
    """Merge the shards into ``an.collection`` and take the stored ablation unit when it matches
    (``an._ablation`` stays None otherwise: the analysis computes the sections itself)."""
    an.collection = merge_collection(an, setup, allow_partial=allow_partial)
    an._ablation = stored_ablation(an, setup, an.collection)
    an.use_logit_unit(load_logit_unit(setup.db, setup.fingerprint))
    an.stored_corpus = setup.corpus
    return an.collection


def _id_list(ids: list[int], limit: int = 20) -> str:
    text = ", ".join(str(i) for i in ids[:limit])
    return text + (f", … ({len(ids)} in all)" if len(ids) > limit else "")


def collect_or_merge_sharded(an: SAEAnalyzer) -> CollectionResult | None:
    """For ``sae analyze`` on a folder whose database was written shard by shard: fill the missing
    shards in this process, then merge. None when the database is not a sharded one."""
    db = an.out / DATABASE
    if an.cfg.overwrite or not (db / MANIFEST).exists() or "plan" not in read_manifest(db):
        return None
    setup = sharded_setup(an)
    check_compatible(db, setup.fingerprint, setup.plan)
    missing = setup.missing()
    if missing:
        from interplab.sae.shard_worker import collect_shards

        collect_shards(
            worker_context(an, setup), [setup.specs[i] for i in missing], "collecting missing shards"
        )
    return merge_into(an, setup)


ANALYSIS_ONLY = (
    "similarity", "cooccurrence", "n_neighbours", "similarity_dense_limit", "ablation_tokens",
    "ablation_features", "context_radius",
)  # fmt: skip


def analyzer_from_database(analysis_dir: str | Path, **options: Any) -> SAEAnalyzer:
    """An analyzer configured as the ``sae collect`` run that wrote ``analysis_dir``; ``options``
    may change the steps after collection (:data:`ANALYSIS_ONLY`), not what was collected."""
    from interplab.sae.analyzer import SAEAnalyzer

    out = Path(analysis_dir)
    db = out / DATABASE
    require(
        (db / MANIFEST).exists(), f"{out}: no {DATABASE}/{MANIFEST} here (run `interplab sae collect` first)"
    )
    manifest = read_manifest(db)
    require(
        "collect" in manifest and "plan" in manifest,
        f"{db / MANIFEST}: not written by `interplab sae collect` (no plan); `sae analyze` reads it directly",
    )
    cfg = dict(manifest["collect"])
    cfg.pop("model_dtype", None)
    for key in options:
        one_of(key, ANALYSIS_ONLY, "merge option")
    cfg.update(options)
    cfg["cooccurrence"] = tuple(cfg.get("cooccurrence") or ("phi",))
    hook = (manifest.get("fingerprint") or {}).get("hook")
    return SAEAnalyzer(
        cfg.pop("model_name"),
        cfg.pop("sae_path"),
        cfg.pop("layer"),
        cfg.pop("hook_name"),
        out,
        cfg.pop("batch_size"),
        hook_point=hook_point_named(hook) if hook else None,
        **cfg,
    )


def run_merge(analysis_dir: str | Path, allow_partial: bool = False, **options: Any) -> AnalysisResult:
    """``interplab sae merge``: check the shards, reduce their partials and write the analysis folder
    exactly as ``sae analyze`` does (``options``: see :func:`analyzer_from_database`)."""
    an = analyzer_from_database(analysis_dir, **options)
    manifest = read_manifest(an.out / DATABASE)
    stored = manifest.get("fingerprint") or {}
    setup = stored_setup(an, manifest)
    if setup is not None:  # the merge reads the SAE's decoder itself: the collected one?
        identity = an.sae_identity()
        _refuse_changed(setup.db, {k: stored.get(k) for k in identity}, identity)
    else:  # written before the manifest stored the plan: recompute it from the corpus
        setup = sharded_setup(an)
        setup.fingerprint.update(_dtype_entry(stored))
        setup.config.update(_dtype_entry(stored))
        _refuse_changed(setup.db, stored, setup.fingerprint)
    merge_into(an, setup, allow_partial=allow_partial)
    collected = manifest["collect"]
    ablation_changed = any(
        k in options and options[k] != collected.get(k) for k in ("ablation_tokens", "ablation_features")
    )
    if an._ablation is None and not (allow_partial or ablation_changed or an.sae.cfg.hook_name_out):
        raise InterplabError(
            f"{setup.db}: the ablation unit ({ABLATION_UNIT}) is missing or was computed for other "
            f"shards or options; compute it with: {fill_command(setup.db, setup.config)}"
        )
    if an._ablation is None:
        log.info("computing the ablation sections in the merge (full forward passes)")
        if an.windows is None:  # the forward passes read the corpus: the collected one?
            an.load_data()
            _refuse_changed(setup.db, stored, {**an.fingerprint(), **_dtype_entry(stored)})
    return an.run()


def _dtype_entry(fingerprint: dict[str, Any]) -> dict[str, Any]:
    return {"model_dtype": fingerprint["model_dtype"]} if "model_dtype" in fingerprint else {}


def _refuse_changed(db: Path, stored: dict[str, Any], current: dict[str, Any]) -> None:
    differs = differing_fields(stored, current)
    require(
        not differs,
        f"{db}: the model, SAE or corpus changed since collection (differs in: {', '.join(differs)})",
    )
