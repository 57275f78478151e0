"""Helpers for the sae-analyze tests: a tiny random SAE on the tiny GPT-2, one shared analysis run,
and brute-force readers of the stored database."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from interplab.sae.formats import save_sae
from interplab.sae.model import SAE, SAEConfig

D_IN = 32
D_SAE = 40
N_DEAD = 4  # features 0..3 get a very negative bias: they can never fire
LAYER = 0
HOOK = "hook_resid_post"
CONTEXT = 16


def make_sae(seed: int = 0, d_in: int = D_IN, d_sae: int = D_SAE) -> SAE:
    """A random ReLU SAE whose first ``N_DEAD`` features never fire."""
    g = torch.Generator().manual_seed(seed)
    cfg = SAEConfig(d_in=d_in, d_sae=d_sae, architecture="standard", hook_name=f"blocks.{LAYER}.{HOOK}")
    b_enc = torch.rand(d_sae, generator=g) * 0.6 - 0.5
    b_enc[:N_DEAD] = -1e4
    return SAE.from_weights(
        cfg,
        W_enc=torch.randn(d_in, d_sae, generator=g) * 0.5,
        W_dec=torch.randn(d_sae, d_in, generator=g) * 0.3,
        b_enc=b_enc,
        b_dec=torch.zeros(d_in),
    )


def write_sae(folder: Path, seed: int = 0, **kw: Any) -> Path:
    history = [{"step": i, "loss": 1.0 / (i + 1), "l0": 8.0} for i in range(5)]
    return save_sae(make_sae(seed, **kw), folder, history=history)


def write_texts(path: Path, texts: list[str]) -> Path:
    path.write_text(json.dumps([*texts[:20], "", *texts[20:]]))
    return path


#: the result sections computed from the collected statistics and the ablation passes
STAT_SECTIONS = (
    "sparsity",
    "dead_features",
    "reconstruction",
    "ablation",
    "feature_ablation",
    "feature_stats",
)

ANALYSIS_OPTIONS: dict[str, Any] = {
    "context_size": CONTEXT,
    "top_k": 5,
    "cooccurrence": ("phi", "jaccard", "pmi"),
    "shard_tokens": 256,
    "ablation_tokens": 96,
    "ablation_features": 3,
    "n_neighbours": 4,
    "context_radius": 3,
}


@dataclasses.dataclass
class AnalysisSetup:
    model: Path
    sae: Path
    data: Path
    out: Path
    result: Any

    @property
    def db(self) -> Path:
        return self.out / "activation_database"

    def file(self, key: str) -> Path:
        return self.out / self.result.files[key]


def run_analysis(model: Path, sae: Path, data: Path, out: Path, **kw: Any) -> Any:
    from interplab.sae.analyzer import run_comprehensive_analysis

    return run_comprehensive_analysis(
        str(model), sae, LAYER, HOOK, str(data), 4, out, **{**ANALYSIS_OPTIONS, **kw}
    )


def load_db(db: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The whole database, loaded with pandas (fine for the tiny test corpus)."""
    acts = pd.read_parquet(db / "activations")
    toks = pd.read_parquet(db / "tokens")
    return acts.sort_values(["token_idx", "feature"]).reset_index(drop=True), toks.sort_values("token_idx")


def dense_from_db(db: Path, d_sae: int = D_SAE) -> np.ndarray:
    """Feature activations ``[n_tokens, d_sae]`` rebuilt from the stored rows."""
    acts, toks = load_db(db)
    F = np.zeros((len(toks), d_sae), np.float32)
    F[acts.token_idx.to_numpy(), acts.feature.to_numpy()] = acts.value.to_numpy()
    return F
