"""Load a weight matrix (``.pt``) and turn it into binary feature vectors (mask = W ≠ 0).

A matrix ``[D, N]`` has N features, its columns (``axis="columns"``); ``axis="rows"`` takes the
rows as features instead. Feature vectors are returned as a boolean ``[N, D]`` array.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np

from interplab.common.errors import InterplabError, one_of

AXES = ("columns", "rows")


@dataclasses.dataclass
class FeatureMatrix:
    """The binary feature vectors of one weight matrix."""

    path: Path
    shape: tuple[int, int]
    axis: str
    mask: np.ndarray  # bool [n_features, n_positions]

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def n_features(self) -> int:
        return int(self.mask.shape[0])

    @property
    def n_positions(self) -> int:
        return int(self.mask.shape[1])

    @property
    def density(self) -> float:
        """Fraction of kept (non-zero) entries."""
        return float(self.mask.mean())

    def describe(self) -> dict[str, object]:
        """The ``matrix`` block of the JSON results."""
        return {
            "path": str(self.path),
            "name": self.name,
            "shape": list(self.shape),
            "axis": self.axis,
            "n_features": self.n_features,
            "n_positions": self.n_positions,
            "density": self.density,
        }


def _load_failure(path: Path, exc: Exception) -> str:
    """A short reason why ``torch.load`` failed."""
    import zipfile

    try:
        head = path.read_bytes()[:2]
    except OSError as err:
        return f"cannot read: {err.strerror}"
    if not zipfile.is_zipfile(path) and not head.startswith(b"\x80"):
        return "neither a torch zip archive nor a pickle"
    if "weights_only" in str(exc).lower() or "unpickl" in str(exc).lower():
        return "it holds objects other than tensors, refused by weights_only=True"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return first[:160]


def load_tensor(path: str | Path) -> np.ndarray:
    """Read a 2-D tensor from a ``.pt`` file with ``weights_only=True`` (a tensor, or a dict with
    exactly one tensor or a ``weight`` entry)."""
    import torch

    p = Path(path)
    if not p.exists():
        raise InterplabError(f"{p}: matrix file not found (expected a .pt file holding a 2-D tensor)")
    if p.is_dir():
        raise InterplabError(f"{p}: is a folder; expected a .pt file holding a 2-D tensor")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols before failing
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InterplabError(f"{p}: not a readable torch .pt file ({_load_failure(p, exc)})") from exc
    if isinstance(obj, dict):
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if "weight" in tensors:
            obj = tensors["weight"]
        elif len(tensors) == 1:
            obj = next(iter(tensors.values()))
        else:
            raise InterplabError(
                f"{p}: holds a dict with keys {sorted(map(str, obj))[:8]}; expected a single 2-D tensor"
            )
    if not isinstance(obj, torch.Tensor):
        raise InterplabError(f"{p}: holds a {type(obj).__name__}; expected a 2-D tensor")
    if obj.dim() != 2:
        raise InterplabError(f"{p}: tensor has shape {list(obj.shape)}; expected a 2-D matrix")
    return (obj != 0).numpy()


def mask_from_array(nonzero: np.ndarray, axis: str = "columns") -> np.ndarray:
    """Boolean feature vectors ``[N, D]`` from a boolean ``[D, N]`` non-zero map."""
    one_of(axis, AXES, "axis")
    mask = nonzero.T if axis == "columns" else nonzero
    return np.ascontiguousarray(mask, dtype=bool)


def load_matrix(path: str | Path, axis: str = "columns") -> FeatureMatrix:
    """Load ``path`` and validate that its mask has both kept and pruned entries."""
    one_of(axis, AXES, "axis")
    p = Path(path)
    nonzero = load_tensor(p)
    shape = (int(nonzero.shape[0]), int(nonzero.shape[1]))
    if 0 in shape:
        raise InterplabError(f"{p}: tensor has shape {list(shape)}; expected a non-empty 2-D matrix")
    kept = int(nonzero.sum())
    if kept == nonzero.size:
        raise InterplabError(f"{p}: mask has no zeros (matrix is dense); nothing to analyse")
    if kept == 0:
        raise InterplabError(f"{p}: matrix is all zeros; nothing to analyse")
    return FeatureMatrix(path=p, shape=shape, axis=axis, mask=mask_from_array(nonzero, axis))
