"""Fast decoding of a whole W&B log into a :class:`RunLog`.

The compiled kernels (:mod:`interplab.runs.wire_kernels`) frame the log, check CRCs and decode
the history and summary records into flat arrays; numbers are parsed in bulk by Arrow (exact,
correctly rounded, like ``json.loads``); every other record goes through protobuf and the same
:class:`RunLogBuilder` as the reference decoder. The result is identical to
:func:`interplab.runs.offline.decode_log_exact` (tested); a log with an unexpected shape — a
dict-valued history item, a history row without ``_step``, a key-hash collision — is decoded
by the reference path instead.
"""

from __future__ import annotations

import logging
import zlib
from concurrent.futures import ThreadPoolExecutor
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from interplab.runs import wire_kernels as wk
from interplab.runs.leveldb_log import FILE_HEADER_LEN, TYPE_CRC, check_file_header
from interplab.runs.records import (
    RunLog,
    RunLogBuilder,
    build_history_frame,
    history_items,
    loads_value,
    parse_record,
    remove_path,
    set_path,
)

logger = logging.getLogger(__name__)

_SEEDS = np.array([TYPE_CRC[t] for t in range(5)], dtype=np.uint32)


class _Fallback(Exception):
    """The log has a shape the fast path does not cover; use the reference decoder."""


def _parse_numbers(
    buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray, typ: pa.DataType, min_parallel: int = 1 << 20
) -> np.ndarray:
    """The JSON number texts ``buf[start:start+length]`` parsed as ``typ``; from ``min_parallel``
    numbers the two halves are parsed on two threads (the gather and Arrow's cast drop the GIL)."""

    def parse(lo: int, hi: int) -> np.ndarray:
        data, offsets = wk.gather_bytes(buf, starts[lo:hi], lengths[lo:hi])
        arr = pa.Array.from_buffers(
            pa.large_string(), hi - lo, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
        )
        return pc.cast(arr, typ).to_numpy(zero_copy_only=False)

    n = len(starts)
    if n < max(min_parallel, 2):
        return parse(0, n)
    with ThreadPoolExecutor(2) as pool:
        return np.concatenate(list(pool.map(parse, (0, n // 2), (n // 2, n))))


def decode_bytes(data: bytes | np.ndarray, path: str | Path = "<bytes>") -> RunLog | None:
    """Decode a whole log; None when the fast path does not apply (caller uses the reference).

    ``data``: the file's bytes, or a writable ``uint8`` array
    (:func:`~interplab.runs.leveldb_log.read_log_buffer`), which is then used as scratch space
    (records are moved together in place: no second copy of a large log) and left overwritten.
    """
    check_file_header(bytes(memoryview(data)[:FILE_HEADER_LEN]), path)  # a short log stays short
    try:
        return _decode(data, path)
    except (_Fallback, pa.ArrowInvalid, ValueError) as why:
        logger.debug("%s: reference decoder used (%s)", path, why)
        return None


def frame(buf: np.ndarray, min_parallel: int = 1 << 24) -> tuple[Any, ...]:
    """:func:`~interplab.runs.wire_kernels.frame_log` with checksums checked, and the same result:
    framed without checks, then every piece's CRC checked at once (on two cores from
    ``min_parallel`` bytes); a damaged log is framed again with per-chunk checks, since a bad chunk
    is skipped and changes where the next one starts."""
    framed = wk.frame_log(buf, wk.CRC_TABLE, _SEEDS, False)
    n = framed[4]
    if framed[6] or not _pieces_intact(buf, framed[0][:n], framed[1][:n], min_parallel):
        framed = wk.frame_log(buf, wk.CRC_TABLE, _SEEDS, True)
    return framed


def _pieces_intact(buf: np.ndarray, p_start: np.ndarray, p_len: np.ndarray, min_parallel: int) -> bool:
    """Whether every chunk's stored CRC matches its data. zlib's CRC is several times faster than
    the compiled one and releases the GIL, so the two halves of the piece list run on two cores."""
    if not len(p_start):
        return True
    b = buf
    h = p_start - wk.HEADER
    stored = (
        b[h].astype(np.uint32)
        | (b[h + 1].astype(np.uint32) << 8)
        | (b[h + 2].astype(np.uint32) << 16)
        | (b[h + 3].astype(np.uint32) << 24)
    )
    seeds = _SEEDS[b[h + 6]]
    view = memoryview(buf)

    def check(lo: int, hi: int) -> bool:
        crc32 = zlib.crc32
        for s, n, seed, want in zip(
            p_start[lo:hi].tolist(),
            p_len[lo:hi].tolist(),
            seeds[lo:hi].tolist(),
            stored[lo:hi].tolist(),
            strict=True,
        ):
            if crc32(view[s : s + n], seed) != want:
                return False
        return True

    n = len(p_start)
    if n < 2 or int(p_len.sum()) < min_parallel:
        return check(0, n)
    with ThreadPoolExecutor(2) as pool:
        return all(pool.map(check, (0, n // 2), (n // 2, n)))


def _decode(data: bytes | np.ndarray, path: str | Path) -> RunLog:
    buf = np.frombuffer(data, dtype=np.uint8)
    assert FILE_HEADER_LEN == wk.HEADER
    p_start, p_len, r_first, r_n, _, n_rec, damaged, partial = frame(buf)
    r_first, r_n = r_first[:n_rec], r_n[:n_rec]
    rec_start = p_start[r_first].copy()
    rec_len = p_len[r_first].copy()
    if buf.flags.writeable:
        # records split over blocks are joined in place (compiled, one pass, no new buffer)
        rec_start, rec_len = wk.compact_records(buf, p_start, p_len, r_first, r_n)
        data = memoryview(buf)  # type: ignore[assignment]  # spans are copied out as bytes
    elif (r_n > 1).any():
        # records split over blocks: gather every record's pieces into one new buffer (compiled,
        # one pass) so each record is one span; wide runs have almost only such records
        before = np.cumsum(r_n) - r_n
        total = int(r_n.sum())
        idx = np.arange(total, dtype=np.int64) - np.repeat(before, r_n) + np.repeat(r_first, r_n)
        gathered, offsets = wk.gather_bytes(buf, p_start[idx], p_len[idx])
        rec_start = offsets[before]
        rec_len = offsets[before + r_n] - rec_start
        buf = gathered
        data = memoryview(gathered)  # type: ignore[assignment]  # spans are copied out as bytes
    single = np.ones(n_rec, dtype=np.bool_)
    max_keys = 1 << 16  # distinct key paths; a wider log is decoded again with room for more
    while True:
        out = wk.decode_records(buf, rec_start, rec_len, single, max_keys)
        if not out[-1]:  # no overflow
            break
        max_keys *= 8
    (
        kinds,
        it_rec,
        it_key,
        it_class,
        it_vstart,
        it_vlen,
        op_rec,
        op_key,
        op_vstart,
        op_vlen,
        op_remove,
        key_first,
        key_count,
        part_start,
        part_len,
        key_first_item,
        key_last_op,
        collision,
        _,
    ) = out
    if collision:
        raise _Fallback("key hash collision")

    # --- slow records through protobuf, in order
    builder = RunLogBuilder(collect_summary=True)
    is_hist = kinds == wk.KIND_HISTORY
    slow_rows: dict[int, list[tuple[str, Any]]] = {}
    for r in np.flatnonzero((kinds == wk.KIND_SLOW) | (kinds == wk.KIND_HISTORY_SLOW)).tolist():
        record = parse_record(bytes(data[rec_start[r] : rec_start[r] + rec_len[r]]))
        if record is None:
            continue
        if record.WhichOneof("record_type") == "history":
            is_hist[r] = True
            slow_rows[r] = history_items(record.history)
        else:
            builder.apply(record, r)
    row_of_rec = np.cumsum(is_hist) - 1
    n_rows = int(is_hist.sum())

    # --- key names
    key_parts = _key_parts(buf, data, key_first, key_count, part_start, part_len)
    key_names = [p[0] if len(p) == 1 else ".".join(p) for p in key_parts]

    # --- history columns
    columns = _history_columns(
        buf,
        data,
        row_of_rec,
        it_rec,
        it_key,
        it_class,
        it_vstart,
        it_vlen,
        key_names,
        key_first_item,
        slow_rows,
    )
    if n_rows and len(columns.get("_step", ((), ()))[0]) < n_rows:
        raise _Fallback("history row without a _step item")

    # --- summary: the last op per key among fast ops, plus all slow ops, in log order
    ops = list(builder.summary_ops or [])
    if len(op_key):
        last = np.sort(key_last_op[key_last_op >= 0])
        for i in last.tolist():
            value = None
            if not op_remove[i]:
                value = loads_value(bytes(data[op_vstart[i] : op_vstart[i] + op_vlen[i]]))
            ops.append(
                (int(op_rec[i]), -1_000_000_000 + i, key_parts[int(op_key[i])], value, bool(op_remove[i]))
            )
    ops.sort(key=itemgetter(0, 1))
    summary = builder.log.summary
    for _, _, path_parts, value, remove in ops:
        if remove:
            remove_path(summary, path_parts)
        else:
            set_path(summary, path_parts, value)

    if damaged:
        logger.warning(
            "%s: skipped %d damaged chunk(s) (bad CRC or framing); read %d valid records",
            path,
            damaged,
            n_rec,
        )
    if partial:
        logger.info("%s: the log ends in a partial record (run cut off or still being written)", path)
    log = builder.finish()
    log.history = build_history_frame(n_rows, columns)
    log.n_records = int(n_rec)
    log.damaged_chunks = int(damaged)
    log.partial_tail = bool(partial)
    return log


def _key_parts(
    buf: np.ndarray,
    data: bytes | memoryview,
    key_first: np.ndarray,
    key_count: np.ndarray,
    part_start: np.ndarray,
    part_len: np.ndarray,
) -> list[list[str]]:
    """Each key's path parts as text: decoded in bulk by Arrow (valid UTF-8, the usual case), else
    one by one with invalid bytes replaced, as the reference decoder does."""
    texts: list[str] | None = None
    if len(part_start):
        joined, offsets = wk.gather_bytes(buf, part_start, part_len)
        arr = pa.Array.from_buffers(
            pa.large_string(), len(part_start), [None, pa.py_buffer(offsets), pa.py_buffer(joined)]
        )
        try:
            arr.validate(full=True)
            texts = arr.to_pylist()
        except pa.ArrowInvalid:
            texts = None
    if texts is None:
        texts = [
            bytes(data[s : s + n]).decode("utf-8", errors="replace")
            for s, n in zip(part_start.tolist(), part_len.tolist(), strict=True)
        ]
    return [texts[f : f + c] for f, c in zip(key_first.tolist(), key_count.tolist(), strict=True)]


def _grid_width(it_key: np.ndarray, rows: np.ndarray) -> int:
    """Items per row when every history row holds the same distinct keys in the same order (items
    then form a (rows, keys) grid in log order), else 0."""
    n = len(it_key)
    if n == 0:
        return 0
    first_row = np.flatnonzero(rows != rows[0])
    m = int(first_row[0]) if len(first_row) else n
    if n % m:
        return 0
    keys = it_key.reshape(-1, m)
    grid_rows = rows.reshape(-1, m)
    if not (keys == keys[0]).all() or not (grid_rows == grid_rows[:, :1]).all():
        return 0
    if len(np.unique(keys[0])) != m or (np.diff(grid_rows[:, 0]) <= 0).any():
        return 0
    return m


def _history_columns(
    buf: np.ndarray,
    data: bytes | memoryview,
    row_of_rec: np.ndarray,
    it_rec: np.ndarray,
    it_key: np.ndarray,
    it_class: np.ndarray,
    it_vstart: np.ndarray,
    it_vlen: np.ndarray,
    key_names: list[str],
    key_first_item: np.ndarray,
    slow_rows: dict[int, list[tuple[str, Any]]],
) -> dict[str, tuple[np.ndarray, Any]]:
    """Per key (first-seen order): row indices and values (ndarray, or list when mixed types)."""
    rows = row_of_rec[it_rec] if len(it_rec) else np.zeros(0, np.int64)
    # numbers in bulk
    values = np.full(len(it_key), np.nan)
    is_int = it_class == wk.V_INT
    is_float = it_class == wk.V_FLOAT
    if is_float.any():
        values[is_float] = _parse_numbers(buf, it_vstart[is_float], it_vlen[is_float], pa.float64())
    ints = np.zeros(0, np.int64)
    if is_int.any():
        ints = _parse_numbers(buf, it_vstart[is_int], it_vlen[is_int], pa.int64())
        values[is_int] = ints.astype(np.float64)
    int_vals = np.zeros(len(it_key), np.int64)
    int_vals[is_int] = ints
    other = np.flatnonzero(it_class == wk.V_OTHER)
    other_vals: dict[int, Any] = {}
    for i in other.tolist():
        v = loads_value(bytes(data[it_vstart[i] : it_vstart[i] + it_vlen[i]]))
        if isinstance(v, dict) and v:
            raise _Fallback("dict-valued history item")
        other_vals[i] = v

    # first-seen order of keys: (row, position in row)
    order_key: dict[str, tuple[int, int]] = {}
    if len(it_key):
        uniq = np.flatnonzero(key_first_item >= 0)
        first = key_first_item[uniq]
        rec_first_item = np.searchsorted(it_rec, it_rec[first])
        for k, i, f in zip(uniq.tolist(), first.tolist(), rec_first_item.tolist(), strict=True):
            # key paths that join to one dotted name share a column placed where the first of them was seen
            here = (int(rows[i]), i - f)
            seen = order_key.get(key_names[k])
            order_key[key_names[k]] = here if seen is None else min(seen, here)
    slow_by_key: dict[str, tuple[list[int], list[Any]]] = {}
    for r, items in slow_rows.items():
        row = int(row_of_rec[r])
        for j, (key, value) in enumerate(items):
            if isinstance(value, dict) and value:
                raise _Fallback("dict-valued history item")
            order_key[key] = min(order_key.get(key, (row, j)), (row, j))
            entry = slow_by_key.setdefault(key, ([], []))
            entry[0].append(row)
            entry[1].append(value)

    # items grouped by key, rows ascending within a key (log order)
    n_keys = len(key_names)
    grid = _grid_width(it_key, rows)
    if grid:
        # every row holds the same keys in the same order (the SDK's usual log): a key's items are
        # one column of the (rows, keys) grid — strided views, no sort and no gather
        grid_pos = np.full(n_keys, -1, np.int64)
        grid_pos[it_key[:grid]] = np.arange(grid)
        grid_rows = rows[::grid]
        grid_values = values.reshape(-1, grid)
        grid_ints = int_vals.reshape(-1, grid)
    else:
        # a stable sort of small ints is a radix sort in numpy
        small = it_key.astype(np.int16) if n_keys < 2**15 else it_key
        by_key = np.argsort(small, kind="stable")
        bounds = np.zeros(n_keys + 1, np.int64)
        np.cumsum(np.bincount(it_key, minlength=n_keys), out=bounds[1:])
        rows_by_key = rows[by_key]
        values_by_key = values[by_key]

    def items_of(k: int) -> np.ndarray:
        """Item indices of key id ``k``, in log order."""
        if grid:
            return np.arange(grid_pos[k], len(it_key), grid) if grid_pos[k] >= 0 else np.zeros(0, np.int64)
        return by_key[bounds[k] : bounds[k + 1]]

    ids_of_name: dict[str, list[int]] = {}  # key ids per dotted name (several when paths collide)
    for k, name in enumerate(key_names):
        ids_of_name.setdefault(name, []).append(k)
    # per key: items that are not ints / not numbers; the common case (one key path per name, all
    # numbers, no protobuf-decoded row) is a slice of arrays gathered once in key order
    n_nonint = np.bincount(it_key[~is_int], minlength=n_keys)
    n_other = np.bincount(it_key[other], minlength=n_keys)
    columns: dict[str, tuple[np.ndarray, Any]] = {}
    for name in sorted(order_key, key=order_key.__getitem__):
        ks = ids_of_name.get(name, [])
        if len(ks) == 1 and name not in slow_by_key and not n_other[ks[0]]:
            k = ks[0]
            if grid:
                j = grid_pos[k]
                columns[name] = (grid_rows, grid_values[:, j] if n_nonint[k] else grid_ints[:, j])
            else:
                a, b = bounds[k], bounds[k + 1]
                vals = values_by_key[a:b] if n_nonint[k] else int_vals[by_key[a:b]]
                columns[name] = (rows_by_key[a:b], vals)
            continue
        if len(ks) == 1:
            idx = items_of(ks[0])
        elif ks:
            idx = np.sort(np.concatenate([items_of(k) for k in ks]))
        else:
            idx = np.zeros(0, np.int64)
        slow = slow_by_key.get(name)
        cls = it_class[idx]
        if slow is None and not (cls == wk.V_OTHER).any():
            if (cls == wk.V_INT).all():
                columns[name] = (rows[idx], int_vals[idx])
            else:
                columns[name] = (rows[idx], values[idx])
            continue
        pairs = []
        for i, c in zip(idx.tolist(), cls.tolist(), strict=True):
            v = (
                int(int_vals[i])
                if c == wk.V_INT
                else (other_vals[i] if c == wk.V_OTHER else float(values[i]))
            )
            pairs.append((int(rows[i]), v))
        if slow is not None:
            pairs.extend(zip(*slow, strict=True))
            pairs.sort(key=lambda p: p[0])
        columns[name] = (np.array([p[0] for p in pairs], np.int64), [p[1] for p in pairs])
    return columns
