"""Options of ``masks extract``, ``masks diff`` and ``masks speedup``: one dataclass per command,
each field with its default and its help text in ``metadata["help"]`` (the CLI builds its options
from these). Kept free of heavy imports so ``interplab --help`` stays fast."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ExtractConfig:
    """Options of ``masks extract``."""

    model_dir: Path = field(metadata={"help": "A Hugging Face model folder with safetensors weights."})
    out: Path = field(metadata={"help": "Output folder; the masks go to OUT/<label>/."})
    label: str | None = field(
        default=None, metadata={"help": "Method name of the mask set (default: the model folder's name)."}
    )


@dataclass
class DiffConfig:
    """Options of ``masks diff``."""

    a: Path = field(metadata={"help": "First mask set (a folder of layer<L>-<component>.pt files)."})
    b: Path = field(metadata={"help": "Second mask set of the same model."})
    out: Path | None = field(
        default=None, metadata={"help": "Output folder (default masks_diff/<A>-vs-<B>)."}
    )
    top: int = field(
        default=10, metadata={"help": "Most different matrices listed in the report and figure."}
    )


@dataclass
class SpeedupConfig:
    """Options of ``masks speedup``."""

    masks_dir: Path = field(metadata={"help": "A mask set (a folder of layer<L>-<component>.pt files)."})
    out: Path | None = field(default=None, metadata={"help": "Output folder (default <MASKS_DIR>/speedup)."})
    machines: str = field(
        default="a100,h100,host",
        metadata={"help": "Comma-separated machines: presets a100, h100, and host (measured with torch)."},
    )
    batch_sizes: str = field(
        default="1,16,256,4096", metadata={"help": "Comma-separated batch sizes B of y = W x."}
    )
    permute: bool = field(
        default=True, metadata={"help": "Run the row/column permutation search (16x8 tiles)."}
    )
    rounds: int = field(default=2, metadata={"help": "Greedy refinement rounds of the permutation search."})
    seed: int = field(default=0, metadata={"help": "Seed of the null-model shuffle."})
