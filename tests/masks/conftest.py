"""Fixtures for the masks tests: weight matrices saved as .pt files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest


def planted_features(
    n_per: int = 12, k: int = 4, d: int = 96, flip: float = 0.03, seed: int = 0
) -> np.ndarray:
    """Boolean [k·n_per, d] feature vectors: k random prototypes, each feature a copy with a few bits flipped."""
    rng = np.random.default_rng(seed)
    protos = rng.random((k, d)) < 0.5
    labels = np.repeat(np.arange(k), n_per)
    rng.shuffle(labels)
    return protos[labels] ^ (rng.random((len(labels), d)) < flip)


def random_features(n: int = 48, d: int = 96, density: float = 0.5, seed: int = 1) -> np.ndarray:
    """Boolean [n, d] i.i.d. feature vectors."""
    return np.random.default_rng(seed).random((n, d)) < density


@pytest.fixture
def save_matrix(tmp_path: Path) -> Callable[..., Path]:
    """Save boolean feature vectors [N, D] as a float weight matrix [D, N] (features = columns)."""
    import torch

    def _save(features: np.ndarray, rel: str = "m/wanda/layer1-mlp.down_proj.pt", seed: int = 0) -> Path:
        rng = np.random.default_rng(seed)
        weights = np.asarray(features, dtype=bool).T * (rng.random(features.T.shape) + 0.1)
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(torch.tensor(weights, dtype=torch.float32), path)
        return path

    return _save


@pytest.fixture
def planted_mask() -> np.ndarray:
    """48 features of 96 positions in 4 planted clusters."""
    return planted_features()


@pytest.fixture
def random_mask() -> np.ndarray:
    """48 i.i.d. random features of 96 positions (density 0.5)."""
    return random_features()
