"""N:M compliance of a mask: prune N of every M consecutive inputs of a row (keep at most M−N).

For a boolean kept-mask [out, in] split into groups of M consecutive inputs per row (the last group
zero-padded), a group *violates* N:M when it keeps more than M−N weights. The distance to the
nearest N:M mask (fewest flipped positions, Hamming) is Σ_groups max(0, kept − (M−N)): only kept
weights need to go, and dropping the excess of each group independently is optimal because the
groups are disjoint.
"""

from __future__ import annotations

import dataclasses

import numpy as np

STANDARD_PATTERNS = ((2, 4), (4, 8))


@dataclasses.dataclass
class NMCompliance:
    """How far one mask is from N:M."""

    pattern: str
    groups: int
    violating_groups: int
    distance: int
    weights: int

    @property
    def violating_fraction(self) -> float:
        return self.violating_groups / self.groups if self.groups else 0.0

    @property
    def distance_fraction(self) -> float:
        """Distance as a fraction of all weights."""
        return self.distance / self.weights if self.weights else 0.0

    def record(self) -> dict[str, float | int | str]:
        return {
            "pattern": self.pattern,
            "groups": self.groups,
            "violating_groups": self.violating_groups,
            "violating_fraction": self.violating_fraction,
            "distance": self.distance,
            "distance_fraction": self.distance_fraction,
        }


def group_counts(kept: np.ndarray, m: int) -> np.ndarray:
    """Kept weights per group of ``m`` consecutive inputs, [rows, ⌈in/m⌉] (last group zero-padded)."""
    k = np.asarray(kept, dtype=bool)
    rows, cols = k.shape
    padded = np.ascontiguousarray(np.pad(k, ((0, 0), (0, -cols % m))) if cols % m else k)
    word = _WORDS.get(m)
    if word is not None:  # m booleans (bytes 0/1) read as one integer: its popcount is the count
        return np.bitwise_count(padded.view(np.uint8).view(word)).reshape(rows, -1).astype(np.int64)
    return padded.reshape(rows, -1, m).sum(axis=2)


_WORDS = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def nm_compliance(kept: np.ndarray, n: int, m: int) -> NMCompliance:
    """Violating groups and Hamming distance of ``kept`` [out, in] to the nearest N:M mask."""
    counts = group_counts(kept, m)
    excess = np.clip(counts - (m - n), 0, None)
    return NMCompliance(
        pattern=f"{n}:{m}",
        groups=int(counts.size),
        violating_groups=int((excess > 0).sum()),
        distance=int(excess.sum()),
        weights=int(np.asarray(kept).size),
    )


def complies(kept: np.ndarray, n: int, m: int) -> bool:
    """Every group of ``m`` keeps at most ``m − n``."""
    return bool((group_counts(kept, m) <= m - n).all())
