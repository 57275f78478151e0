"""Scores of an explanation against held-out examples from the activation database.

* **detection** — held-out activating tokens (positives) against tokens where the feature is silent
  (negatives): balanced accuracy ``(TPR + TNR)/2`` of the explainer's yes/no predictions and AUROC of
  its scores (for yes/no predictions AUROC equals balanced accuracy);
* **fuzzing** — inside windows around held-out activating tokens, every token is labelled by whether
  the feature fires on it; the same two numbers over those tokens;
* **embedding** — the cosine between the MiniLM sentence embedding (mean pooling, as
  sentence-transformers' all-MiniLM-L6-v2) of the explanation and of each window; AUROC of
  activating windows against non-activating and hard-negative windows (windows centred on a token
  the feature fires on elsewhere, where it is silent).

A built-in rule is evaluated on the tokens directly; an explanation in words needs a scorer model
(the OpenAI-compatible endpoint) for detection and fuzzing, and gets the embedding score always.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch

from interplab.sae.explain.rules import balanced_accuracy


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); NaN when one class is missing."""
    labels = np.asarray(labels, bool)
    scores = np.asarray(scores, np.float64)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def binary_scores(labels: np.ndarray, predictions: np.ndarray, prefix: str) -> dict[str, float | None]:
    """``{prefix}_balanced_accuracy`` and ``{prefix}_auroc`` of yes/no predictions."""
    labels = np.asarray(labels, bool)
    pred = np.asarray(predictions, np.float64)
    ba = balanced_accuracy(pred[labels], pred[~labels])
    au = auroc(labels, pred)
    return {f"{prefix}_balanced_accuracy": _finite(ba), f"{prefix}_auroc": _finite(au)}


def _finite(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


class Embedder:
    """The built-in MiniLM as a sentence embedder (mean pooling over tokens, unit length)."""

    def __init__(self, model: str = "minilm", batch_size: int = 64, max_length: int = 128) -> None:
        from interplab.common.models import load_model

        loaded = load_model(model, causal=False)
        self.model, self.tokenizer = loaded.model, loaded.tokenizer
        self.batch_size, self.max_length = batch_size, max_length

    def __call__(self, texts: list[str]) -> np.ndarray:
        """``[len(texts), d]`` unit embeddings."""
        out = []
        for s in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(
                texts[s : s + self.batch_size],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            with torch.no_grad():
                h = self.model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
            e = (h * m).sum(1) / m.sum(1).clamp_min(1e-9)
            out.append(torch.nn.functional.normalize(e, dim=1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 1), np.float32)

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one embedder per run; explanations repeat
    def one(self, text: str) -> np.ndarray:
        return self([text])[0]


def embedding_score(embed: Any, explanation: str, positives: list[str], negatives: list[str]) -> float | None:
    """AUROC of cos(explanation, window) for activating against non-activating windows."""
    if not positives or not negatives or not explanation:
        return None
    e = embed.one(explanation) if hasattr(embed, "one") else embed([explanation])[0]
    w = embed(positives + negatives)
    sims = w @ e
    labels = np.r_[np.ones(len(positives), bool), np.zeros(len(negatives), bool)]
    return _finite(auroc(labels, sims))
