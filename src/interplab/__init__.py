"""interplab — look inside neural networks: W&B runs, pruning-mask structure and sparse autoencoders."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("interplab")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
