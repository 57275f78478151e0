"""The options of the ``masks`` analysis and pruning commands (``extract``/``diff``/``speedup``: see
:mod:`interplab.masks.mask_configs`), each declared once as a dataclass (flag, help, default): the
typer command, the Python function and the ``--config`` file read the same declaration. Free of
torch imports so the CLI stays fast."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from interplab.common.options import option

DEFAULT_NULL_SAMPLES = 20  # shuffled-mask draws per execution
DEFAULT_MAX_FEATURES = 2048  # the whole-matrix Hamming histogram subsamples beyond this many features
AXIS_HELP = "Features are the matrix 'columns' (default) or its 'rows'."
NULL_HELP = "Null-model samples (shuffled-mask draws) per execution; 0 turns the null model off."
HIST_HELP = "Whole-matrix Hamming histogram: at most this many features (random subsample beyond)."
SEED_HELP = "Seed for the feature choice, k-means and the null model."
MATRIX_HELP = "A .pt file holding a 2-D weight matrix [D, N]."
DEFAULT_MATRIX_DIR = "clustering_characterization"  # multi-seed: <method>/layer<L>-<component>.pt inside
DEFAULT_LAMBDA = 0.08  # OWL: spread of the per-layer sparsities around the target
DEFAULT_M = 5.0  # OWL: an outlier is a Wanda score above M x the layer mean


@dataclasses.dataclass
class SelectionConfig:
    """What every single-matrix analysis shares: the matrix, the neighbourhood, k-means, the null
    model, the whole-matrix histogram and the JSON output."""

    matrix_path: Path = option(flag="matrix", argument=True, help=MATRIX_HELP)
    n_features: int = option(128, help="Top-N similar features per reference feature (itself included).")
    n_clusters: int = option(8, help="k for k-means.")
    seed: int = option(42, help=SEED_HELP)
    axis: str = option("columns", help=AXIS_HELP)
    null_samples: int = option(DEFAULT_NULL_SAMPLES, help=NULL_HELP)
    hist_max_features: int = option(DEFAULT_MAX_FEATURES, help=HIST_HELP)
    output_json: Path | None = option(None, help="Write the results JSON here.")


@dataclasses.dataclass
class HammingConfig(SelectionConfig):
    """``interplab masks hamming``: one reference feature and its top-N neighbours."""

    feature_idx: int | None = option(None, help="Reference feature (random if omitted).")


@dataclasses.dataclass
class MultiExecConfig(SelectionConfig):
    """``interplab masks multi-exec``: repeated random reference features of one matrix."""

    n_executions: int = option(10, help="Random reference features.")


def parse_k_values(values: list[str], extra: list[str] | tuple[str, ...] = ()) -> list[int]:
    """``--k-values 4 8 16`` (extra tokens after the option), ``--k-values 4,8`` or repeated flags."""
    from interplab.common.errors import InterplabError

    tokens = [t for v in [*values, *extra] for t in str(v).replace(",", " ").split()]
    try:
        return [int(t) for t in tokens]
    except ValueError as exc:
        raise InterplabError(f"--k-values expects integers, got {' '.join(tokens)!r}") from exc


@dataclasses.dataclass
class MultiSeedConfig:
    """``interplab masks multi-seed`` (:func:`interplab.masks.multi_seed.multi_seed_analysis`)."""

    method: str = option(help="Method folder inside --matrix-dir (e.g. wanda).")
    component: str = option(
        help="e.g. mlp.down_proj (or another family's name of that role, e.g. output.dense), self_attn.q_proj."
    )
    layer: int = option(1, help="Layer number.")
    matrix_dir: Path = option(Path(DEFAULT_MATRIX_DIR), help="Holds <method>/layer<L>-<component>.pt.")
    seeds: int = option(10, help="Random seeds (0 … seeds-1).")
    n_similar: int = option(128, help="Top-N similar features per seed.")
    k_values: list[int] = option(
        [4, 8, 16],
        help="k values, e.g. --k-values 4 8 16.",
        parse=parse_k_values,
        cli_type=list[str],
        cli_default=["4", "8", "16"],
    )
    output_dir_path: Path | None = option(
        None, "--output-dir", "Default results/metrics/multi_seed_clustering/<method>/<component>/."
    )
    axis: str = option("columns", help=AXIS_HELP)
    null_samples: int = option(DEFAULT_NULL_SAMPLES, help=NULL_HELP)
    hist_max_features: int = option(DEFAULT_MAX_FEATURES, help=HIST_HELP)


@dataclasses.dataclass
class ReportConfig:
    """``interplab masks report`` (:func:`interplab.masks.report.comparative_report`)."""

    results_dir: Path = option(Path("analysis_results"), help="Searched recursively.")
    out: Path | None = option(None, help="Folder for the report files (default: results dir).")


@dataclasses.dataclass(kw_only=True)
class PruneConfig:
    """``interplab masks prune`` (the keyword arguments of :func:`interplab.masks.prune.prune_model`)."""

    out: str = option(help="Output folder; results go to OUT/<method>/.")
    model: str = option("minilm", help="'minilm', a model folder or a Hugging Face hub id.")
    method: str = option("wanda", help="magnitude, wanda or sparsegpt.")
    sparsity: float = option(0.5, help="Fraction pruned per row, in (0, 1).")
    structure: str = option("unstructured", help="'unstructured' or N:M such as 2:4 (sparsity then n/m).")
    data: str = option("docs", help="Calibration text: 'docs' or a .json/.txt/.jsonl/.parquet file.")
    nsamples: int = option(128, help="Calibration windows.")
    seqlen: int = option(128, help="Tokens per calibration window.")
    seed: int = option(0, help="Seed for drawing the calibration windows.")
    save_model: bool = option(False, help="Also save the pruned model to OUT/<method>/model/.")
    eval_samples: int = option(16, help="Held-out windows for the quality check.")
    batch_size: int = option(8, help="Windows per forward pass.")
    sparsity_profile: str = option(
        "uniform", help="'uniform' or 'owl' (per-layer sparsity from outlier ratios)."
    )
    owl_lambda: float = option(DEFAULT_LAMBDA, help="OWL: spread of the layer sparsities.")
    owl_m: float = option(DEFAULT_M, help="OWL: outlier = Wanda score above M x the layer mean.")
    magnitude_scope: str = option(
        "row", help="Magnitude: 'row' (per output row) or 'matrix' (published baseline)."
    )
    sparsegpt_reference_count: bool = option(
        False, help="SparseGPT: prune as the reference (<= k-th saliency)."
    )
