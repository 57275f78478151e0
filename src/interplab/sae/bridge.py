"""The pruning bridge of ``interplab sae compare --model-b``: the SAE of an analysis, run on the
analysis' corpus through the analysis' model (A) and through a second model (B, e.g. the output of
``masks prune --save-model``), token for token.

Per feature ``i`` over the ``N`` text tokens (``a``, ``b`` the feature's activations in A and B):

* firing rate ``p_A = #{a > 0} / N``, ``p_B`` likewise, ``ratio = p_B / p_A`` (null when ``p_A = 0``);
* ``activation_corr = (N Σab − Σa Σb) / sqrt((N Σa² − (Σa)²)(N Σb² − (Σb)²))`` (null when either
  never varies);
* ``died``: ``p_A > 0`` and ``p_B = 0``; ``appeared``: ``p_A = 0`` and ``p_B > 0``;

and for the whole SAE the explained variance ``1 − Σ‖x − x̂‖² / Σ_d Var(x_d)·N`` on each model's
activations (:class:`interplab.sae.metrics.ReconstructionStats`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from interplab.common.atomic import write_json, write_parquet
from interplab.common.errors import require
from interplab.common.models import LoadedModel, load_model
from interplab.common.output import output_dir, timestamp
from interplab.common.progress import track
from interplab.sae.compare import (
    STABILITY_PREFIX,
    CompareConfig,
    CompareResult,
    ensure_analysis,
    load_side,
    nullable_floats,
    stability_table,
    write_summary,
)
from interplab.sae.corpus import TokenWindows, iter_batches, load_windows, n_batches
from interplab.sae.hooks import HookPoint, capture_activations, resolve_sae_hook
from interplab.sae.metrics import ReconstructionStats
from interplab.sae.model import SAE

log = logging.getLogger(__name__)


class SideSums:
    """One model's streaming per-feature sums (firing count, Σf, Σf²) and reconstruction quality."""

    def __init__(self, d_sae: int, d_in: int) -> None:
        self.count = np.zeros(d_sae, np.float64)
        self.sum = np.zeros(d_sae, np.float64)
        self.sq = np.zeros(d_sae, np.float64)
        self.recon = ReconstructionStats(d_in)

    def update(self, f: torch.Tensor, x: torch.Tensor, x_hat: torch.Tensor) -> None:
        """Add the codes ``f`` (float64) of activations ``x`` and their reconstruction ``x_hat``."""
        self.recon.update(x, x_hat)
        self.count += (f > 0).sum(0).numpy()
        self.sum += f.sum(0).numpy()
        self.sq += (f * f).sum(0).numpy()


@dataclasses.dataclass
class BridgeStats:
    """Streaming per-feature sums over the tokens seen by both models: each model's sums and the
    cross term Σ f_a·f_b."""

    d_sae: int
    d_in: int
    n_tokens: int = 0
    a: SideSums = dataclasses.field(init=False)
    b: SideSums = dataclasses.field(init=False)
    sum_ab: np.ndarray = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.a, self.b = SideSums(self.d_sae, self.d_in), SideSums(self.d_sae, self.d_in)
        self.sum_ab = np.zeros(self.d_sae, np.float64)

    def update(self, x_a: torch.Tensor, x_b: torch.Tensor, sae: SAE) -> None:
        """Add the hooked activations ``[n, d_in]`` of the same tokens in A and B."""
        with torch.no_grad():
            fa, xa_hat = sae.encode_decode(x_a.to(sae.device, sae.dtype))
            fb, xb_hat = sae.encode_decode(x_b.to(sae.device, sae.dtype))
        fa, fb = fa.double(), fb.double()
        self.a.update(fa, x_a, xa_hat)
        self.b.update(fb, x_b, xb_hat)
        self.n_tokens += int(fa.shape[0])
        self.sum_ab += (fa * fb).sum(0).numpy()

    def per_feature(self) -> dict[str, np.ndarray]:
        """The per-feature columns (see the module docstring)."""
        n = max(self.n_tokens, 1)
        a, b = self.a, self.b
        rate_a, rate_b = a.count / n, b.count / n
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(rate_a > 0, rate_b / np.where(rate_a > 0, rate_a, 1.0), np.nan)
            va = np.maximum(n * a.sq - a.sum**2, 0.0)
            vb = np.maximum(n * b.sq - b.sum**2, 0.0)
            den = np.sqrt(va * vb)
            corr = np.where(den > 0, (n * self.sum_ab - a.sum * b.sum) / np.where(den > 0, den, 1), np.nan)
        return {
            "feature": np.arange(self.d_sae),
            "firing_rate_a": rate_a,
            "firing_rate_b": rate_b,
            "firing_rate_ratio": ratio,
            "activation_corr": np.clip(corr, -1, 1),
            "mean_activation_a": a.sum / n,
            "mean_activation_b": b.sum / n,
            "died": (a.count > 0) & (b.count == 0),
            "appeared": (a.count == 0) & (b.count > 0),
        }


def run_bridge(
    a: LoadedModel,
    b: LoadedModel,
    hp_a: HookPoint,
    hp_b: HookPoint,
    sae: SAE,
    windows: TokenWindows,
    batch_size: int,
) -> BridgeStats:
    """One pass over ``windows`` through both models (forward stopped after the hooked layer)."""
    stats = BridgeStats(sae.d_sae, sae.d_in)
    for batch in track(
        iter_batches(windows, batch_size), "pruning bridge", total=n_batches(windows, batch_size)
    ):
        mask = batch.token_mask
        xa = capture_activations(a.model, hp_a, batch.input_ids, batch.attention_mask, stop=True)
        xb = capture_activations(b.model, hp_b, batch.input_ids, batch.attention_mask, stop=True)
        stats.update(xa[mask.to(xa.device)].float().cpu(), xb[mask.to(xb.device)].float().cpu(), sae)
    return stats


def bridge_figure(cols: dict[str, np.ndarray], label_a: str, label_b: str) -> Any:
    from interplab.common.figures import new_figure

    fig, axes = new_figure(1, 2, figsize=(9, 3.6))
    ax = axes[0]
    ra, rb = cols["firing_rate_a"], cols["firing_rate_b"]
    positive = np.concatenate([ra[ra > 0], rb[rb > 0]])
    floor = 0.5 * float(positive.min()) if positive.size else 1e-6  # where zero rates are drawn
    ax.scatter(np.maximum(ra, floor), np.maximum(rb, floor), s=4, alpha=0.5, color="C0")
    ax.scatter(
        np.maximum(ra[cols["died"]], floor),
        np.full(int(cols["died"].sum()), floor),
        s=8,
        color="C3",
        label="died",
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    lim = [floor, 1.0]
    ax.plot(lim, lim, color="0.5", lw=0.8)
    ax.set_xlabel(f"firing rate in {label_a}")
    ax.set_ylabel(f"firing rate in {label_b}")
    ax.legend(loc="upper left")
    ax = axes[1]
    c = cols["activation_corr"]
    ax.hist(c[np.isfinite(c)], bins=np.linspace(-1, 1, 41), color="C2")
    ax.set_xlabel("activation correlation (same tokens)")
    ax.set_ylabel("features")
    fig.tight_layout()
    return fig


def compare_models(cfg: CompareConfig) -> CompareResult:
    """Run analysis A's SAE through A's model and ``cfg.model_b`` on A's corpus; write ``cfg.out``."""
    t0 = time.perf_counter()
    out = Path(cfg.out)
    assert cfg.model_b is not None
    side = load_side(ensure_analysis(cfg.a, "A", cfg, out), cfg.label_a)
    fp = side.fingerprint
    for key in ("model", "hook", "data", "context_size"):
        require(fp.get(key) is not None, f"{side.db / 'manifest.json'}: fingerprint.{key} is missing")
    sae = side.sae
    loaded_a = load_model(fp["model"])
    loaded_b = load_model(cfg.model_b)
    hp_a = resolve_sae_hook(loaded_a, sae, fp["hook"], None)
    hp_b = resolve_sae_hook(loaded_b, sae, fp["hook"], None)
    max_tokens = cfg.max_tokens if cfg.max_tokens is not None else fp.get("max_tokens")
    windows = load_windows(loaded_a.tokenizer, fp["data"], int(fp["context_size"]), max_tokens)
    windows_b = load_windows(loaded_b.tokenizer, fp["data"], int(fp["context_size"]), max_tokens)
    require(
        torch.equal(windows.input_ids, windows_b.input_ids),
        f"{cfg.model_b}: its tokenizer cuts the corpus {fp['data']} into other tokens than {fp['model']}'s; "
        "the bridge needs the same tokens in both models",
    )
    stats = run_bridge(loaded_a, loaded_b, hp_a, hp_b, sae, windows, cfg.batch_size)
    cols = stats.per_feature()
    label_a = cfg.label_a or str(fp["model"])
    label_b = cfg.label_b or Path(cfg.model_b).name
    ev_a = stats.a.recon.result()["explained_variance"]
    ev_b = stats.b.recon.result()["explained_variance"]
    alive = cols["firing_rate_a"] > 0
    summary: dict[str, Any] = {
        "analysis": str(side.root.resolve()),
        "sae": fp.get("sae"),
        "hook": hp_a.name,
        "model_a": str(fp["model"]),
        "model_b": str(cfg.model_b),
        "label_a": label_a,
        "label_b": label_b,
        "data": fp["data"],
        "n_tokens": stats.n_tokens,
        "d_sae": sae.d_sae,
        "explained_variance_a": ev_a,
        "explained_variance_b": ev_b,
        "n_alive_a": int(alive.sum()),
        "n_alive_b": int((cols["firing_rate_b"] > 0).sum()),
        "n_died": int(cols["died"].sum()),
        "n_appeared": int(cols["appeared"].sum()),
        "died": np.flatnonzero(cols["died"]).tolist(),
        "appeared": np.flatnonzero(cols["appeared"]).tolist(),
        "activation_corr_mean": _nanmean(cols["activation_corr"]),
        "activation_corr_median": _nanmedian(cols["activation_corr"]),
        "firing_rate_ratio_median": _nanmedian(cols["firing_rate_ratio"]),
        "definitions": __doc__.split("Per feature", 1)[1].strip() if __doc__ else "",
    }
    files: dict[str, str] = {}
    ts = timestamp()
    with output_dir(out, "sae compare --model-b", dataclasses.asdict(cfg)) as od:
        files["features"] = "features.parquet"
        table = pa.table(
            {k: (nullable_floats(v) if v.dtype.kind == "f" else pa.array(v)) for k, v in cols.items()}
        )
        write_parquet(od.file(files["features"]), table)
        files["plot_bridge"] = "plots/pruning_bridge.png"
        od.save_figure(bridge_figure(cols, label_a, label_b), files["plot_bridge"])
        write_summary(od, files, summary, t0, "results/bridge.json", bridge_report)
        if cfg.write_back:
            d = sae.d_sae
            feats = np.arange(d)
            corr = cols["activation_corr"]
            target = side.root / "results" / f"{STABILITY_PREFIX}{ts}.parquet"
            write_parquet(
                target,
                stability_table(
                    d, feats, feats, np.ones(d), corr, corr, label_b, side.root, cfg.stable_threshold
                ),
            )
            summary["written_back"] = [str(target)]
            write_json(od.file(files["summary"]), summary)
    return CompareResult(out=out, files=files, summary=summary)


def _nanmean(x: np.ndarray) -> float | None:
    return float(np.nanmean(x)) if np.isfinite(x).any() else None


def _nanmedian(x: np.ndarray) -> float | None:
    return float(np.nanmedian(x)) if np.isfinite(x).any() else None


def bridge_report(s: dict[str, Any]) -> str:
    def f(v: Any) -> str:
        return "–" if v is None else f"{v:.4f}"

    return "\n".join(
        [
            f"# Pruning bridge: {s['label_a']} vs {s['label_b']}",
            "",
            f"The SAE `{s['sae']}` at `{s['hook']}`, run on {s['n_tokens']} tokens of `{s['data']}` "
            "through both models.",
            "",
            "| | A | B |",
            "|---|---|---|",
            f"| explained variance | {f(s['explained_variance_a'])} | {f(s['explained_variance_b'])} |",
            f"| features that fire | {s['n_alive_a']} | {s['n_alive_b']} |",
            "",
            f"- features that die in B: {s['n_died']}; that appear in B: {s['n_appeared']}",
            f"- activation correlation on the same tokens: mean {f(s['activation_corr_mean'])}, "
            f"median {f(s['activation_corr_median'])}",
            f"- median firing-rate ratio B/A: {f(s['firing_rate_ratio_median'])}",
            "",
            "Files: `features.parquet` (one row per feature), `results/bridge.json`, "
            "`plots/pruning_bridge.png` (see docs/sae-compare.md).",
            "",
        ]
    )
