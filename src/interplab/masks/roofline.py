"""Roofline estimate of ``y = W x`` for a masked weight W [out, in] and a batch of B inputs, per
storage format, against dense.

Every format's time is ``max(FLOPs / peak, bytes / bandwidth)`` (compute- or memory-bound), with
the FLOPs and bytes taken from the mask itself (v = bytes per value, nnz = kept weights, X is read
and Y written once):

| format | FLOPs | weight bytes | peak used |
|---|---|---|---|
| dense | 2·out·in·B | v·out·in | tensor |
| 2:4 (sparse tensor cores; only a 2:4-compliant mask) | 2·(out·in/2)·B | v·out·in/2 + out·in/8 (2-bit index per kept value) | tensor |
| BSR b×b (non-empty blocks stored dense) | 2·nb·b²·B | v·nb·b² + 4·nb + 4·(⌈out/b⌉+1) | block (= tensor on GPUs) |
| CSR | 2·nnz·B | (v+4)·nnz + 4·(out+1) | SIMT (no tensor cores) |
| tiled (load as sparse, compute as dense) | 2·nt·t_r·t_c·B | v·nnz + nt·t_r·t_c/8 (bitmask of each non-empty tile) + 4·nt | tensor |

plus v·in·B (read X) and v·out·B (write Y) for every format. nb, nt: non-empty blocks/tiles.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from interplab.common.errors import InterplabError
from interplab.common.timing import best_time
from interplab.masks.nm import complies
from interplab.masks.tiles import count_nonempty_tiles

BATCH_SIZES = (1, 16, 256, 4096)
FORMATS = ("dense", "2:4", "bsr16", "bsr32", "csr", "tiled")
INDEX_BYTES = 4


@dataclasses.dataclass(frozen=True)
class Machine:
    """Peak rates of one accelerator: dense tensor-core FLOP/s (2:4 runs the halved FLOPs at this
    rate, i.e. the datasheet's 2× "sparse" figure), SIMT FLOP/s (CSR), memory bandwidth, and the
    bytes per weight/activation value."""

    name: str
    tensor_flops: float
    simt_flops: float
    bandwidth: float
    value_bytes: int = 2
    block_flops: float | None = None  # BSR rate; None = tensor_flops (blocks on tensor cores)
    sparse24: bool = True  # has 2:4 sparse tensor cores

    @property
    def bsr_flops(self) -> float:
        return self.block_flops if self.block_flops is not None else self.tensor_flops


# Datasheet numbers (dense BF16/FP16 tensor core, non-tensor FP16, HBM bandwidth).
PRESETS = {
    "a100": Machine("A100-SXM4-80GB", tensor_flops=312e12, simt_flops=78e12, bandwidth=2.039e12),
    "h100": Machine("H100-SXM5-80GB", tensor_flops=989e12, simt_flops=134e12, bandwidth=3.35e12),
}


def measure_host(size: int = 1024, batch: int = 64, repeats: int = 3) -> Machine:
    """The host CPU measured with torch (float32): a CPU has no separate tensor cores, so each
    kernel family's achieved rate is measured on a ``size``² matrix times ``batch`` columns — dense
    ``mm`` (tensor), ``torch.sparse`` CSR at 90 % sparsity (SIMT) and BSR 16×16 with half the
    blocks (block) — and the bandwidth of a 32 MB copy (bytes read + written per second)."""
    import warnings

    import torch

    gen = torch.Generator().manual_seed(0)
    w = torch.randn(size, size, generator=gen)
    x = torch.randn(size, batch, generator=gen)
    dense = 2.0 * size * size * batch / best_time(lambda: torch.mm(w, x), repeats)
    sparse = w * (torch.rand(size, size, generator=gen) < 0.1)
    blocks = torch.rand(size // 16, size // 16, generator=gen) < 0.5
    blocked = w * blocks.repeat_interleave(16, 0).repeat_interleave(16, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
        csr = sparse.to_sparse_csr()
        bsr = blocked.to_sparse_bsr((16, 16))
        simt = 2.0 * int((sparse != 0).sum()) * batch / best_time(lambda: csr @ x, repeats)
        block = 2.0 * int(blocks.sum()) * 256 * batch / best_time(lambda: bsr @ x, repeats)
    src = torch.empty(32 * 1024 * 1024 // 4)
    dst = torch.empty_like(src)
    bandwidth = 2.0 * src.numel() * 4 / best_time(lambda: dst.copy_(src), repeats)
    return Machine(
        f"host CPU ({torch.get_num_threads()} threads)",
        dense,
        simt,
        bandwidth,
        value_bytes=4,
        block_flops=block,
        sparse24=False,
    )


def machine(name: str) -> Machine:
    """A preset (``a100``, ``h100``) or ``host`` (measured now)."""
    if name == "host":
        return measure_host()
    if name not in PRESETS:
        raise InterplabError(f"--machine {name!r}: expected one of: {', '.join([*PRESETS, 'host'])}")
    return PRESETS[name]


@dataclasses.dataclass(frozen=True)
class MaskCounts:
    """What the roofline needs from a mask: shape, kept weights, non-empty blocks and tiles."""

    rows: int
    cols: int
    nnz: int
    blocks16: int
    blocks32: int
    tiles: int
    tile_shape: tuple[int, int]
    is_24: bool

    @classmethod
    def of(cls, kept: np.ndarray, tile: tuple[int, int] = (16, 8)) -> MaskCounts:
        k = np.asarray(kept, dtype=bool)
        return cls(
            rows=int(k.shape[0]),
            cols=int(k.shape[1]),
            nnz=int(k.sum()),
            blocks16=count_nonempty_tiles(k, (16, 16)),
            blocks32=count_nonempty_tiles(k, (32, 32)),
            tiles=count_nonempty_tiles(k, tile),
            tile_shape=tile,
            is_24=k.shape[1] % 4 == 0 and complies(k, 2, 4),
        )


@dataclasses.dataclass(frozen=True)
class Cost:
    """FLOPs, bytes and roofline seconds of one format at one batch size."""

    flops: float
    bytes: float
    peak: float
    bandwidth: float

    @property
    def seconds(self) -> float:
        return max(self.flops / self.peak, self.bytes / self.bandwidth)

    @property
    def bound(self) -> str:
        return "compute" if self.flops / self.peak >= self.bytes / self.bandwidth else "memory"


def format_cost(fmt: str, c: MaskCounts, batch: int, m: Machine) -> Cost | None:
    """Roofline cost of ``fmt`` (None where the format does not apply: 2:4 on a non-2:4 mask or on
    a machine without 2:4 sparse tensor cores)."""
    v = m.value_bytes
    io = v * c.cols * batch + v * c.rows * batch
    dense_weights = c.rows * c.cols
    if fmt == "dense":
        return Cost(2.0 * dense_weights * batch, v * dense_weights + io, m.tensor_flops, m.bandwidth)
    if fmt == "2:4":
        if not (c.is_24 and m.sparse24):
            return None
        return Cost(
            2.0 * dense_weights / 2 * batch,
            v * dense_weights / 2 + dense_weights / 8 + io,
            m.tensor_flops,
            m.bandwidth,
        )
    if fmt in ("bsr16", "bsr32"):
        b = 16 if fmt == "bsr16" else 32
        nb = c.blocks16 if b == 16 else c.blocks32
        stored = nb * b * b
        index = INDEX_BYTES * nb + INDEX_BYTES * (-(-c.rows // b) + 1)
        return Cost(2.0 * stored * batch, v * stored + index + io, m.bsr_flops, m.bandwidth)
    if fmt == "csr":
        return Cost(
            2.0 * c.nnz * batch,
            (v + INDEX_BYTES) * c.nnz + INDEX_BYTES * (c.rows + 1) + io,
            m.simt_flops,
            m.bandwidth,
        )
    if fmt == "tiled":
        area = c.tile_shape[0] * c.tile_shape[1]
        return Cost(
            2.0 * c.tiles * area * batch,
            v * c.nnz + c.tiles * area / 8 + INDEX_BYTES * c.tiles + io,
            m.tensor_flops,
            m.bandwidth,
        )
    raise InterplabError(f"unknown format {fmt!r}; expected one of: {', '.join(FORMATS)}")


def speedups(c: MaskCounts, m: Machine, batches: tuple[int, ...] = BATCH_SIZES) -> list[dict[str, object]]:
    """One row per (batch, format): FLOPs, bytes, seconds, bound and speedup over dense."""
    rows: list[dict[str, object]] = []
    for batch in batches:
        dense = format_cost("dense", c, batch, m)
        assert dense is not None
        for fmt in FORMATS:
            cost = format_cost(fmt, c, batch, m)
            rows.append(
                {
                    "batch": batch,
                    "format": fmt,
                    "flops": None if cost is None else cost.flops,
                    "bytes": None if cost is None else cost.bytes,
                    "seconds": None if cost is None else cost.seconds,
                    "bound": None if cost is None else cost.bound,
                    "speedup": None if cost is None else dense.seconds / cost.seconds,
                }
            )
    return rows
