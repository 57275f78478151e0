"""The contract of an ``interplab sae analyze`` folder: every relative path, the timestamp rule,
the dense-feature threshold and the shape of one feature-summary line.

The writer (``analyzer``, ``summaries``, ``report``) and the readers (``browser``, notebooks) both
take names from here, so a file is spelled in one place. File names are chosen so that no glob of
one kind of file matches another: ``matrices/feature_cooccurrence_*.npy`` is only ever the phi
matrix, ``matrices/feature_similarity_*.npy`` only the similarity matrix; counts and nearest-
neighbour arrays live in their own sub-folders. See docs/sae-analysis.md for the full layout.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, TypedDict

DENSE_THRESHOLD = 0.1  # a feature firing on more than 10 % of tokens is "dense"
TIMESTAMP_PATTERN = r"\d{8}_\d{6}"  # ``YYYYmmdd_HHMMSS`` (``common.output.timestamp``); sorts by time

# the activation database (a sub-folder of the analysis folder, or a folder of its own)
DATABASE = "activation_database"
DB_MANIFEST = "manifest.json"
DB_ACTIVATIONS = "activations"
DB_TOKENS = "tokens"
DB_STATE = "state"
DB_SUBFOLDERS = (DB_ACTIVATIONS, DB_TOKENS, DB_STATE)
DB_RECORDS = "shards"  # ``sae collect``: one ``part-NNNNN.json`` per complete shard (written last)
DB_PARTIALS = "partials"  # ``sae collect``: one ``part-NNNNN.npz`` of mergeable statistics per shard
DB_UNITS = "units"  # ``sae collect``: results computed once per database, so the merge needs no model
ABLATION_UNIT = f"{DB_UNITS}/ablation.json"  # the ablation sections (full forward passes)
LOGITS_UNIT = f"{DB_UNITS}/logit_effects.npz"  # each feature's top promoted / suppressed tokens

MATRICES = "matrices"
NEIGHBOURS = "matrices/neighbours"
COUNTS = "matrices/counts"
RESULTS = "results"
STABILITY_FILES = ("feature_stability_", ".parquet")  # results/ of ``sae compare`` (write-back)
EXPLANATION_FILES = ("explanations_", ".jsonl")  # results/ of ``sae explain``
PLOTS = "plots"

# the plots of an analysis (each written as .png and .pdf), by ``files`` key
PLOT_NAMES = {
    "plot_feature_density": "feature_density",
    "plot_l0": "l0_histogram",
    "plot_activation_distributions": "activation_distributions",
    "plot_similarity_heatmap": "similarity_heatmap",
    "plot_cooccurrence_heatmap": "cooccurrence_heatmap",
    "plot_training_history": "training_history",
}


def db_shard_paths(name: str, with_state: bool) -> dict[str, str | None]:
    """Relative paths of one database shard's files (``name`` is ``part-NNNNN``)."""
    return {
        "activations": f"{DB_ACTIVATIONS}/{name}.parquet",
        "tokens": f"{DB_TOKENS}/{name}.parquet",
        "state": f"{DB_STATE}/{name}.npz" if with_state else None,
    }


# the files of one run written once per analysis, by attribute of AnalysisPaths
_RUN_FILES = {
    "summary": "SUMMARY_{ts}.json",
    "readme": "README_{ts}.md",
    "results": RESULTS + "/analysis_results_{ts}.json",
    "feature_summaries": RESULTS + "/feature_summaries_{ts}.jsonl",
}


@dataclasses.dataclass(frozen=True)
class AnalysisPaths:
    """The relative paths of one analysis run (timestamp ``ts``): ``summary``, ``readme``,
    ``results``, ``feature_summaries`` and the matrix / plot paths below."""

    ts: str
    summary: str = dataclasses.field(init=False)
    readme: str = dataclasses.field(init=False)
    results: str = dataclasses.field(init=False)
    feature_summaries: str = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        for name, template in _RUN_FILES.items():
            object.__setattr__(self, name, template.format(ts=self.ts))

    def similarity(self) -> str:
        """The dense decoder-similarity matrix."""
        return f"{MATRICES}/feature_similarity_{self.ts}.npy"

    def cooccurrence(self, metric: str, sparse: bool) -> str:
        """A co-occurrence metric matrix: phi keeps the old scripts' name, the others their own."""
        ext = "npz" if sparse else "npy"
        if metric == "phi":
            return f"{MATRICES}/feature_cooccurrence_{self.ts}.{ext}"
        return f"{MATRICES}/cooccurrence_{metric}_{self.ts}.{ext}"

    def cooccurrence_counts(self, sparse: bool) -> str:
        """The raw co-firing counts (diagonal = firing counts)."""
        return f"{COUNTS}/cooccurrence_counts_{self.ts}.{'npz' if sparse else 'npy'}"

    def neighbours(self, matrix: str, part: str) -> str:
        """Top-k neighbour arrays of ``matrix`` (``similarity`` or ``cooccurrence_<metric>``);
        ``part`` is ``indices`` or ``values``."""
        return f"{NEIGHBOURS}/{matrix}_{part}_{self.ts}.npy"

    @staticmethod
    def plot(key: str) -> str:
        """The PNG of a plot by ``files`` key (the PDF sits beside it)."""
        return f"{PLOTS}/{PLOT_NAMES[key]}.png"


def cooccurrence_key(metric: str) -> str:
    """The ``files`` key of a co-occurrence metric matrix (``cooccurrence`` is phi)."""
    return "cooccurrence" if metric == "phi" else f"cooccurrence_{metric}"


def latest(folder: Path, prefix: str, suffix: str) -> Path | None:
    """The file ``folder/<prefix><ts><suffix>`` with the latest timestamp, or None."""
    if not folder.is_dir():
        return None
    pattern = re.compile(re.escape(prefix) + TIMESTAMP_PATTERN + re.escape(suffix) + "$")
    found = sorted(p for p in folder.glob(f"{prefix}*{suffix}") if pattern.match(p.name) and p.is_file())
    return found[-1] if found else None


# -- one line of results/feature_summaries_<ts>.jsonl ------------------------------------------------


class Example(TypedDict):
    """One activating example (a top or a quantile example)."""

    activation: float
    token_idx: int
    token: str
    token_id: int
    text_idx: int
    position: int
    context: str
    context_tokens: list[str]
    context_index: int


class QuantileExample(Example, total=False):
    """A quantile example: which quantile and the histogram bin it was drawn from."""

    quantile: float
    bin_lower: float
    bin_upper: float | None


class TopToken(TypedDict):
    token: str
    count: int
    max_activation: float


class Neighbour(TypedDict, total=False):
    feature: int
    value: float
    count: int  # co-occurrence neighbours only


class LogitToken(TypedDict):
    token: str
    token_id: int
    value: float


class LogitEffects(TypedDict):
    promoted: list[LogitToken]
    suppressed: list[LogitToken]


class Histogram(TypedDict):
    bin_edges: list[float]
    counts: list[int]


class FeatureSummary(TypedDict):
    """One feature's summary line, in the order written (scalars and top tokens come before
    ``top_examples`` so a reader can index a file by parsing only each line's head)."""

    feature: int
    density: float
    n_fires: int
    mean_activation: float
    mean_activation_all_tokens: float
    std_activation: float
    max_activation: float
    is_dead: bool
    is_dense: bool
    top_tokens: list[TopToken]
    top_examples: list[Example]
    quantile_examples: list[QuantileExample]
    logit_effects: LogitEffects | None
    similar_features: list[Neighbour]
    coactivating_features: list[Neighbour]
    activation_histogram: Histogram
    ablation: dict[str, Any] | None


SUMMARY_KEYS: tuple[str, ...] = tuple(FeatureSummary.__annotations__)
# the keys of a feature summary holding one number or flag each
SUMMARY_SCALARS = (
    "n_fires",
    "mean_activation_all_tokens",
    "std_activation",
    "is_dead",
    "is_dense",
)
