"""The LevelDB-style log that W&B writes as ``run-<id>.wandb``: reader (tolerant) and writer.

Layout, as written by wandb-core and checked against files the SDK writes here:

* a 7-byte file header: ident ``b":W&B"``, magic ``0xBEE1`` (uint16 little-endian), version ``0``;
* then the LevelDB log format in 32 KiB blocks, counted from the start of the file (the header
  takes the first 7 bytes of block 0);
* each chunk: ``crc32`` (uint32 LE) · ``length`` (uint16 LE) · ``type`` (uint8) · ``data``.
  The checksum is the plain (unmasked) zlib/IEEE CRC-32 of the type byte followed by the data;
* chunk types FULL=1, FIRST=2, MIDDLE=3, LAST=4 (a record split over blocks is FIRST MIDDLE… LAST);
  when fewer than 7 bytes remain in a block they are zero padding.

The reader never raises on damage: a chunk whose checksum fails is skipped with a warning (and
the record it belonged to), and an incomplete tail — a run still being written or cut off — ends
the log quietly. Files are opened read-only.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from interplab.common.errors import InterplabError

logger = logging.getLogger(__name__)

IDENT = b":W&B"
MAGIC = 0xBEE1
VERSION = 0
FILE_HEADER = IDENT + struct.pack("<HB", MAGIC, VERSION)
FILE_HEADER_LEN = 7
BLOCK_LEN = 32768
CHUNK_HEADER_LEN = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
_CHUNK = struct.Struct("<IHB")
# CRC32 of each chunk-type byte: the seed of every chunk checksum (readers vectorise with it)
TYPE_CRC = {t: zlib.crc32(bytes([t])) for t in (0, FULL, FIRST, MIDDLE, LAST)}


def chunk_crc(kind: int, data: bytes | memoryview) -> int:
    """CRC-32 (IEEE, unmasked) of the type byte followed by the data, as W&B writes it."""
    return zlib.crc32(data, TYPE_CRC.get(kind, zlib.crc32(bytes([kind]))))


@dataclass
class LogScan:
    """Where the records of one log lie: FULL records as (offset, length) spans into the buffer,
    records assembled from FIRST…LAST pieces as bytes; both in file order via ``order``."""

    buffer: bytes
    spans: list[tuple[int, int]] = field(default_factory=list)
    assembled: list[bytes] = field(default_factory=list)
    #: per record, in file order: index into ``spans`` (>= 0) or ``-1 - index`` into ``assembled``
    order: list[int] = field(default_factory=list)
    damaged_chunks: int = 0
    partial_tail: bool = False

    def __len__(self) -> int:
        return len(self.order)

    def records(self) -> Iterator[bytes | memoryview]:
        """Every valid record payload in file order."""
        view = memoryview(self.buffer)
        for i in self.order:
            if i >= 0:
                start, length = self.spans[i]
                yield view[start : start + length]
            else:
                yield self.assembled[-1 - i]


def read_log_bytes(path: str | Path) -> bytes:
    """The whole file, opened read-only; an error names the file if it is not a W&B log."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise InterplabError(f"cannot read W&B log {p}: {exc.strerror}") from exc
    check_file_header(data, p)
    return data


def read_log_buffer(path: str | Path) -> np.ndarray:
    """The whole file as a writable ``uint8`` array (the fast decoder reuses it as scratch space).

    The memory is an anonymous map of ordinary pages, not ``np.empty``: numpy asks for transparent
    huge pages on large arrays, and where the kernel then compacts memory on the first touch
    (``defrag=madvise``) filling a 1.5 GB buffer took 3.5 s instead of 1 s.
    """
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            buf = np.frombuffer(mmap.mmap(-1, size), dtype=np.uint8) if size else np.empty(0, np.uint8)
            n = fh.readinto(memoryview(buf))
    except OSError as exc:
        raise InterplabError(f"cannot read W&B log {p}: {exc.strerror}") from exc
    buf = buf[:n]
    check_file_header(bytes(buf[:FILE_HEADER_LEN]) if n >= FILE_HEADER_LEN else buf.tobytes(), p)
    return buf


def check_file_header(data: bytes, path: str | Path = "<bytes>") -> None:
    """Raise unless ``data`` starts with the W&B log header (``:W&B``, magic 0xBEE1, version 0)."""
    if len(data) < FILE_HEADER_LEN:
        raise InterplabError(f"{path}: too short to be a W&B log ({len(data)} bytes, header is 7)")
    ident, magic, version = data[:4], *struct.unpack_from("<HB", data, 4)
    if ident != IDENT or magic != MAGIC:
        raise InterplabError(f"{path}: not a W&B log (expected header ':W&B' + 0xBEE1, got {data[:6]!r})")
    if version != VERSION:
        raise InterplabError(f"{path}: unsupported W&B log version {version} (expected {VERSION})")


def scan_log(data: bytes, path: str | Path = "<bytes>") -> LogScan:
    """Frame ``data`` (a whole ``.wandb`` file) into records, checking every chunk's CRC.

    Damaged chunks are skipped with one warning per file; a partial tail ends the scan.
    """
    check_file_header(data, path)
    scan = LogScan(buffer=data)
    size = len(data)
    pos = FILE_HEADER_LEN
    pending: list[bytes] | None = None  # pieces of a FIRST…LAST record
    unpack = _CHUNK.unpack_from
    crc32 = zlib.crc32
    seeds = TYPE_CRC
    view = memoryview(data)
    spans, order = scan.spans, scan.order
    while True:
        block_end = (pos // BLOCK_LEN + 1) * BLOCK_LEN
        if block_end - pos < CHUNK_HEADER_LEN:  # zero trailer of the block
            pos = block_end
            block_end += BLOCK_LEN
        if pos + CHUNK_HEADER_LEN > size:
            scan.partial_tail = pos < size and any(data[pos:size])
            break
        crc, length, kind = unpack(data, pos)
        start = pos + CHUNK_HEADER_LEN
        end = start + length
        if kind == 0 and length == 0 and crc == 0:  # zero padding (pre-allocated or trailer)
            pos = block_end
            continue
        if end > size:
            scan.partial_tail = True
            break
        if end > block_end or kind not in seeds or crc32(view[start:end], seeds[kind]) != crc:
            # A bad chunk. If its length still fits the block, resume right after it (the next
            # chunk's own CRC tells whether that was right); otherwise skip to the next block.
            scan.damaged_chunks += 1
            pending = None
            pos = end if end <= block_end else block_end
            continue
        pos = end
        if kind == FULL:
            if pending is not None:
                scan.damaged_chunks += 1  # a FIRST without its LAST
                pending = None
            order.append(len(spans))
            spans.append((start, length))
        elif kind == FIRST:
            if pending is not None:
                scan.damaged_chunks += 1
            pending = [data[start:end]]
        elif kind == MIDDLE:
            if pending is None:
                scan.damaged_chunks += 1
            else:
                pending.append(data[start:end])
        else:  # LAST
            if pending is None:
                scan.damaged_chunks += 1
            else:
                pending.append(data[start:end])
                order.append(-1 - len(scan.assembled))
                scan.assembled.append(b"".join(pending))
                pending = None
    if pending is not None:
        scan.partial_tail = True
    if scan.damaged_chunks:
        logger.warning(
            "%s: skipped %d damaged chunk(s) (bad CRC or framing); read %d valid records",
            path,
            scan.damaged_chunks,
            len(order),
        )
    if scan.partial_tail:
        logger.info("%s: the log ends in a partial record (run cut off or still being written)", path)
    return scan


def encode_log(payloads: Iterable[bytes]) -> bytes:
    """Encode record payloads in W&B's log format (header, 32 KiB blocks, chunks with CRCs)."""
    out = bytearray(FILE_HEADER)
    pack = _CHUNK.pack
    for payload in payloads:
        data = memoryview(payload)
        first = True
        while True:
            left = BLOCK_LEN - len(out) % BLOCK_LEN
            if left < CHUNK_HEADER_LEN:
                out += bytes(left)
                left = BLOCK_LEN
            room = left - CHUNK_HEADER_LEN
            piece, data = data[:room], data[room:]
            last = len(data) == 0
            kind = (FULL if last else FIRST) if first else (LAST if last else MIDDLE)
            out += pack(chunk_crc(kind, piece), len(piece), kind)
            out += piece
            first = False
            if last:
                break
    return bytes(out)


def write_log(path: str | Path, payloads: Iterable[bytes]) -> Path:
    """Write record payloads to ``path`` as a W&B log, atomically."""
    from interplab.common.atomic import write_bytes

    return write_bytes(path, encode_log(payloads))
