"""Options of ``masks extract``, ``masks diff`` and ``masks speedup``: one dataclass per command,
each field declared with :func:`interplab.common.options.option` (flag, default, help), from which
the CLI builds the command. Kept free of heavy imports so ``interplab --help`` stays fast."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from interplab.common.options import option

MASK_SET_HELP = "A mask set (a folder of layer<L>-<component>.pt files)."


@dataclass
class ExtractConfig:
    """Options of ``masks extract``."""

    model_dir: Path = option(argument=True, help="A Hugging Face model folder with safetensors weights.")
    out: Path = option(help="Output folder; the masks go to OUT/<label>/.")
    label: str | None = option(None, help="Method name of the mask set (default: the model folder's name).")


@dataclass
class DiffConfig:
    """Options of ``masks diff``."""

    a: Path = option(argument=True, help="First mask set (a folder of layer<L>-<component>.pt files).")
    b: Path = option(argument=True, help="Second mask set of the same model.")
    out: Path | None = option(None, help="Output folder (default masks_diff/<A>-vs-<B>).")
    top: int = option(10, help="Most different matrices listed in the report and figure.")


@dataclass
class SpeedupConfig:
    """Options of ``masks speedup``."""

    masks_dir: Path = option(argument=True, help=MASK_SET_HELP)
    out: Path | None = option(None, help="Output folder (default <MASKS_DIR>/speedup).")
    machines: str = option(
        "a100,h100,host", help="Comma-separated machines: presets a100, h100, and host (measured with torch)."
    )
    batch_sizes: str = option("1,16,256,4096", help="Comma-separated batch sizes B of y = W x.")
    permute: bool = option(
        True, "--permute/--no-permute", "Run the row/column permutation search (16x8 tiles)."
    )
    rounds: int = option(2, help="Greedy refinement rounds of the permutation search.")
    seed: int = option(0, help="Seed of the null-model shuffle.")
