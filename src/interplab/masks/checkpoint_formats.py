"""Reading the weight matrices (and so the masks) of sparse Hugging Face checkpoints.

Three storage formats, announced in ``config.json`` → ``quantization_config.sparsity_config.format``
(no ``sparsity_config`` means dense):

``dense``
    plain safetensors; the zeros of a weight are its mask.
``sparse-bitmask`` (compressed-tensors ``BitmaskCompressor``)
    per module ``<module>.shape`` (int [2]), ``<module>.compressed`` (the kept values, row-major,
    1-D), ``<module>.bitmask`` (uint8 [R, ⌈C/8⌉], one bit per weight, ``packbits`` with
    ``bitorder="little"``: bit b of byte j is column 8j+b) and ``<module>.row_offsets`` (int [R],
    index of each row's first value in ``compressed``).
``sparse-24-bitmask`` (compressed-tensors ``Sparse24BitMaskCompressor``)
    ``<module>.shape`` (int [2, 1]), ``<module>.compressed`` ([R, C/2], the two kept values of every
    group of four in order) and ``<module>.bitmask`` as above.

The stored positions of the compressed formats are the mask: a kept position may hold a zero value
(2:4 compression keeps the two largest magnitudes of a group even if one is zero); such positions
are counted as ``stored_zeros``. The decoder is our own (numpy ``unpackbits`` over ``safetensors``),
so reading needs no ``compressed-tensors`` install; the tests write checkpoints with the
``compressed-tensors`` package itself and compare.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interplab.common.errors import InterplabError

DENSE = "dense"
SPARSE_BITMASK = "sparse-bitmask"
SPARSE_24_BITMASK = "sparse-24-bitmask"
SUPPORTED_FORMATS = (DENSE, SPARSE_BITMASK, SPARSE_24_BITMASK)
PARAMS = {
    SPARSE_BITMASK: ("shape", "compressed", "bitmask", "row_offsets"),
    SPARSE_24_BITMASK: ("shape", "compressed", "bitmask"),
}
SAFE_WEIGHTS = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
# First "<blocks>.<index>." in a parameter path: model.layers.3.…, transformer.h.0.…, encoder.layer.1.…
BLOCK_PATTERN = re.compile(
    r"^(?P<path>(?:.*?\.)?(?:layers|layer|h|blocks))\.(?P<index>\d+)\.(?P<component>.+)$"
)
CONV1D_MODEL_TYPES = ("gpt2",)  # weights stored [in, out]; transposed to [out, in] like `masks prune`


@dataclasses.dataclass(frozen=True)
class SparsityConfig:
    """``quantization_config.sparsity_config`` of a checkpoint (``format="dense"`` when absent)."""

    format: str = DENSE
    targets: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    global_sparsity: float | None = None
    sparsity_structure: str | None = None


@dataclasses.dataclass(frozen=True)
class BlockMatrix:
    """One 2-D weight of a transformer block found in the checkpoint."""

    layer: int
    component: str
    module: str
    format: str
    block_path: str


@dataclasses.dataclass
class DecodedMatrix:
    """A decoded weight [out, in] (float32), its mask (True = kept/stored) and the bytes read."""

    weight: torch.Tensor
    mask: torch.Tensor
    bytes_read: int

    @property
    def stored_zeros(self) -> int:
        """Positions the mask keeps whose stored value is 0."""
        return int((self.mask & (self.weight == 0)).sum())


def read_config(folder: Path) -> dict[str, Any]:
    """``config.json`` of a model folder ({} when there is none)."""
    path = folder / "config.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InterplabError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc


def sparsity_config(config: dict[str, Any], source: str = "config.json") -> SparsityConfig:
    """The sparsity config announced in ``config``; an unknown format is an error."""
    quant = config.get("quantization_config") or config.get("compression_config") or {}
    sparse = quant.get("sparsity_config") if isinstance(quant, dict) else None
    if not sparse:
        return SparsityConfig()
    fmt = str(sparse.get("format", DENSE))
    if fmt not in SUPPORTED_FORMATS:
        raise InterplabError(
            f"{source}: quantization_config.sparsity_config.format {fmt!r} is not supported; "
            f"expected one of: {', '.join(SUPPORTED_FORMATS)}"
        )
    sparsity = sparse.get("global_sparsity")
    return SparsityConfig(
        format=fmt,
        targets=tuple(sparse.get("targets") or ()),
        ignore=tuple(sparse.get("ignore") or ()),
        global_sparsity=float(sparsity) if sparsity is not None else None,
        sparsity_structure=sparse.get("sparsity_structure"),
    )


def safetensors_index(folder: Path) -> dict[str, Path]:
    """Tensor name → safetensors file, from ``model.safetensors``, the shard index, or every
    ``*.safetensors`` file of the folder."""
    from safetensors import safe_open

    if not folder.is_dir():
        raise InterplabError(f"{folder}: not a folder; expected a Hugging Face model folder")
    index_path = folder / SAFE_INDEX
    if (folder / SAFE_WEIGHTS).is_file():
        files = [folder / SAFE_WEIGHTS]
    elif index_path.is_file():
        weight_map = json.loads(index_path.read_text(encoding="utf-8")).get("weight_map", {})
        files = sorted({folder / name for name in weight_map.values()})
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise InterplabError(f"{index_path}: lists shard {missing[0]} which is not in the folder")
    else:
        files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise InterplabError(
            f"{folder}: no safetensors weights (model.safetensors, {SAFE_INDEX} or *.safetensors)"
        )
    names: dict[str, Path] = {}
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as handle:
                for key in handle.keys():  # noqa: SIM118 (a safe_open handle is not a dict)
                    names[key] = file
        except Exception as exc:  # safetensors raises its own error types for a corrupt header
            raise InterplabError(f"{file}: not a readable safetensors file ({exc})") from exc
    return names


def _block_entry(module: str, fmt: str) -> BlockMatrix | None:
    match = BLOCK_PATTERN.match(module)
    if match is None:
        return None
    return BlockMatrix(int(match["index"]), match["component"], module, fmt, match["path"])


def find_block_matrices(names: dict[str, Path], shapes: dict[str, list[int]], fmt: str) -> list[BlockMatrix]:
    """The block weights of a checkpoint: compressed modules (a ``.bitmask`` key) and 2-D dense
    ``.weight`` tensors inside a block, sorted by layer then name."""
    found: list[BlockMatrix] = []
    compressed = {n[: -len(".bitmask")] for n in names if n.endswith(".bitmask")} if fmt != DENSE else set()
    for module in compressed:
        entry = _block_entry(module, fmt)
        if entry is not None:
            found.append(entry)
    for name in names:
        if name.endswith(".weight") and len(shapes[name]) == 2:
            module = name[: -len(".weight")]
            if module not in compressed:
                entry = _block_entry(module, DENSE)
                if entry is not None:
                    found.append(entry)
    return sorted(found, key=lambda b: (b.layer, b.module))


def tensor_shapes(names: dict[str, Path]) -> dict[str, list[int]]:
    """Shape of every tensor, from the safetensors headers (nothing is loaded)."""
    from safetensors import safe_open

    shapes: dict[str, list[int]] = {}
    by_file: dict[Path, list[str]] = {}
    for name, file in names.items():
        by_file.setdefault(file, []).append(name)
    for file, keys in by_file.items():
        with safe_open(str(file), framework="pt") as handle:
            for key in keys:
                shapes[key] = list(handle.get_slice(key).get_shape())
    return shapes


def unpack_mask(bitmask: np.ndarray, shape: tuple[int, int], name: str) -> np.ndarray:
    """Boolean [R, C] mask from the packed uint8 [R, ⌈C/8⌉] bitmask (``bitorder="little"``)."""
    rows, cols = shape
    expected = (rows, math.ceil(cols / 8))
    if bitmask.ndim != 2 or tuple(bitmask.shape) != expected:
        raise InterplabError(
            f"{name}.bitmask: shape {list(bitmask.shape)} does not match {name}.shape {[rows, cols]} "
            f"(expected {list(expected)} bytes, one bit per weight)"
        )
    return np.unpackbits(bitmask.astype(np.uint8, copy=False), axis=1, count=cols, bitorder="little").astype(
        bool
    )


def pack_mask(mask: np.ndarray) -> np.ndarray:
    """uint8 [R, ⌈C/8⌉] bitmask of a boolean [R, C] mask (the inverse of :func:`unpack_mask`)."""
    return np.packbits(np.asarray(mask, dtype=bool), axis=1, bitorder="little")


def _shape(value: torch.Tensor, name: str) -> tuple[int, int]:
    dims = [int(v) for v in value.flatten().tolist()]
    if len(dims) != 2 or min(dims) < 1:
        raise InterplabError(f"{name}.shape: {dims} is not the shape of a 2-D weight")
    return dims[0], dims[1]


def decode_bitmask(
    shape: torch.Tensor, compressed: torch.Tensor, bitmask: torch.Tensor, row_offsets: torch.Tensor, name: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense weight and mask of a ``sparse-bitmask`` module."""
    rows, cols = _shape(shape, name)
    mask = unpack_mask(bitmask.numpy(), (rows, cols), name)
    counts = np.bitwise_count(bitmask.numpy().astype(np.uint8, copy=False)).sum(axis=1, dtype=np.int64)
    if compressed.ndim != 1 or compressed.numel() != int(counts.sum()):
        raise InterplabError(
            f"{name}.compressed: {compressed.numel()} values but {name}.bitmask marks {int(counts.sum())}"
        )
    offsets = row_offsets.flatten().numpy().astype(np.int64)
    expected = np.cumsum(counts) - counts
    if offsets.shape != expected.shape or not np.array_equal(offsets, expected):
        raise InterplabError(f"{name}.row_offsets: do not match the per-row counts of {name}.bitmask")
    mask_t = torch.from_numpy(mask)
    weight = torch.zeros(rows, cols, dtype=torch.float32)
    weight.masked_scatter_(mask_t, compressed.float())
    return weight, mask_t


def decode_24(
    shape: torch.Tensor, compressed: torch.Tensor, bitmask: torch.Tensor, name: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense weight and mask of a ``sparse-24-bitmask`` module (exactly 2 kept per group of 4)."""
    rows, cols = _shape(shape, name)
    mask = unpack_mask(bitmask.numpy(), (rows, cols), name)
    if cols % 4 or tuple(compressed.shape) != (rows, cols // 2):
        raise InterplabError(
            f"{name}.compressed: shape {list(compressed.shape)}, expected {[rows, cols // 2]} for a "
            f"2:4 weight of shape {[rows, cols]}"
        )
    if not _two_of_four(bitmask.numpy(), cols):
        raise InterplabError(f"{name}.bitmask: not 2 of every 4 positions set")
    mask_t = torch.from_numpy(mask)
    weight = torch.zeros(rows, cols, dtype=torch.float32)
    weight.masked_scatter_(mask_t, compressed.float())
    return weight, mask_t


# Bytes whose two nibbles (two groups of four columns) each have exactly two bits set.
_TWO_OF_FOUR_BYTE = np.array(
    [bin(b & 15).count("1") == 2 and bin(b >> 4).count("1") == 2 for b in range(256)], dtype=bool
)


def _two_of_four(bitmask: np.ndarray, cols: int) -> bool:
    """Every group of four columns has exactly two bits set, checked on the packed bytes."""
    packed = bitmask.astype(np.uint8, copy=False)
    if cols % 8 == 0:
        return bool(_TWO_OF_FOUR_BYTE[packed].all())
    full = _TWO_OF_FOUR_BYTE[packed[:, :-1]].all()
    return bool(full and (np.bitwise_count(packed[:, -1] & 15) == 2).all())


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def decode_matrix(entry: BlockMatrix, names: dict[str, Path], transpose: bool) -> DecodedMatrix:
    """Load and decode one block weight as [out, in] float32."""
    from safetensors import safe_open

    if entry.format == DENSE:
        key = f"{entry.module}.weight"
        with safe_open(str(names[key]), framework="pt") as handle:
            raw = handle.get_tensor(key)
        weight = raw.float()
        mask = weight != 0
        read = _nbytes(raw)
    else:
        params: dict[str, torch.Tensor] = {}
        for param in PARAMS[entry.format]:
            key = f"{entry.module}.{param}"
            if key not in names:
                raise InterplabError(
                    f"{key}: missing; a {entry.format} weight needs {', '.join(PARAMS[entry.format])}"
                )
            with safe_open(str(names[key]), framework="pt") as handle:
                params[param] = handle.get_tensor(key)
        read = sum(_nbytes(t) for t in params.values())
        if entry.format == SPARSE_BITMASK:
            weight, mask = decode_bitmask(
                params["shape"], params["compressed"], params["bitmask"], params["row_offsets"], entry.module
            )
        else:
            weight, mask = decode_24(params["shape"], params["compressed"], params["bitmask"], entry.module)
    if transpose:
        weight, mask = weight.t().contiguous(), mask.t().contiguous()
    return DecodedMatrix(weight, mask, read)


def iter_matrices(
    entries: list[BlockMatrix], names: dict[str, Path], transpose: bool
) -> Iterator[tuple[BlockMatrix, DecodedMatrix]]:
    """Decode the block weights one at a time (bounded memory)."""
    for entry in entries:
        yield entry, decode_matrix(entry, names, transpose)
