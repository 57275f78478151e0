"""The LevelDB-style log: our writer reproduces the SDK's bytes; the readers survive damage."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from interplab.common.errors import InterplabError
from interplab.runs import history_fast
from interplab.runs import wire_kernels as wk
from interplab.runs.history_fast import _SEEDS
from interplab.runs.leveldb_log import (
    BLOCK_LEN,
    FILE_HEADER,
    encode_log,
    read_log_buffer,
    read_log_bytes,
    scan_log,
)

from .conftest import WrittenRuns


def _payloads(n: int, seed: int = 0, big_every: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        size = int(rng.integers(0, 300))
        if big_every and i % big_every == 0:
            size = int(rng.integers(40_000, 100_000))  # spans several blocks: FIRST, MIDDLE…, LAST
        out.append(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
    return out


def _kernel_records(data: bytes) -> tuple[list[bytes], int, bool]:
    buf = np.frombuffer(data, dtype=np.uint8)
    p_start, p_len, r_first, r_n, _, n_rec, damaged, partial = wk.frame_log(buf, wk.CRC_TABLE, _SEEDS)
    recs = []
    for r in range(n_rec):
        f, n = int(r_first[r]), int(r_n[r])
        recs.append(b"".join(data[p_start[i] : p_start[i] + p_len[i]] for i in range(f, f + n)))
    return recs, int(damaged), bool(partial)


def test_sdk_file_header_and_chunks(sdk_runs: WrittenRuns) -> None:
    spec = sdk_runs.runs["alpha"]
    assert spec.folder is not None
    data = read_log_bytes(next(spec.folder.glob("run-*.wandb")))
    assert data[:7] == b":W&B" + struct.pack("<HB", 0xBEE1, 0)
    # first chunk: unmasked CRC-32 of type byte + data, little-endian length, type FULL
    crc, length, kind = struct.unpack_from("<IHB", data, 7)
    assert kind == 1
    assert crc == zlib.crc32(bytes([kind]) + data[14 : 14 + length])


def test_writer_reproduces_sdk_bytes(sdk_runs: WrittenRuns) -> None:
    for spec in sdk_runs.runs.values():
        assert spec.folder is not None
        data = read_log_bytes(next(spec.folder.glob("run-*.wandb")))
        scan = scan_log(data)
        assert scan.damaged_chunks == 0 and not scan.partial_tail
        assert scan.assembled, "the SDK runs are long enough to split records over blocks"
        assert encode_log(bytes(p) for p in scan.records()) == data


def test_round_trip_multi_block_records_and_kernel_agrees() -> None:
    payloads = _payloads(400, big_every=97)
    data = encode_log(payloads)
    assert len(data) > 5 * BLOCK_LEN
    assert [bytes(p) for p in scan_log(data).records()] == payloads
    recs, damaged, partial = _kernel_records(data)
    assert recs == payloads and damaged == 0 and not partial


def test_exactly_seven_bytes_left_gives_an_empty_first_chunk() -> None:
    # header (7) + chunk header (7) + data so that 7 bytes remain in block 0
    first = b"x" * (BLOCK_LEN - 7 - 7 - 7)
    payloads = [first, b"hello", b""]
    data = encode_log(payloads)
    _crc, length, kind = struct.unpack_from("<IHB", data, BLOCK_LEN - 7)
    assert (length, kind) == (0, 2)  # FIRST with no data, the rest in the next block
    assert [bytes(p) for p in scan_log(data).records()] == payloads
    assert _kernel_records(data)[0] == payloads


def test_truncation_at_any_offset_keeps_every_complete_record() -> None:
    payloads = _payloads(120, seed=1, big_every=50)
    data = encode_log(payloads)
    ends = [len(encode_log(payloads[: i + 1])) for i in range(len(payloads))]
    rng = np.random.default_rng(2)
    cuts = sorted({7, 8, 13, 14, *rng.integers(7, len(data), 150).tolist(), *ends[:5], len(data) - 1})
    for cut in cuts:
        want = [p for p, e in zip(payloads, ends, strict=True) if e <= cut]
        got = [bytes(p) for p in scan_log(data[:cut]).records()]
        assert got == want, cut
        k_recs, damaged, _ = _kernel_records(data[:cut])
        assert k_recs == want and damaged == 0, cut


def test_corruption_skips_the_damaged_record_only_and_both_readers_agree() -> None:
    payloads = _payloads(300, seed=3, big_every=70)
    data = encode_log(payloads)
    ends = [len(encode_log(payloads[: i + 1])) for i in range(len(payloads))]
    starts = [7, *ends[:-1]]
    rng = np.random.default_rng(4)
    for _ in range(40):
        pos = int(rng.integers(7, len(data)))
        bad = bytearray(data)
        bad[pos] ^= 0x5A
        scan = scan_log(bytes(bad))
        got = [bytes(p) for p in scan.records()]
        k_recs, k_damaged, k_partial = _kernel_records(bytes(bad))
        assert k_recs == got and k_damaged == scan.damaged_chunks and k_partial == scan.partial_tail
        hit = next(i for i, (s, e) in enumerate(zip(starts, ends, strict=True)) if s <= pos < e)
        # every record other than the hit one (and, when a chunk header's length was hit, the
        # rest of its block) is read; nothing that was not written appears
        assert set(got) <= set(payloads)
        assert payloads[hit] not in got or payloads.count(payloads[hit]) > 1 or bad[pos] == data[pos]
        lost = [p for p in payloads if p not in got]
        assert scan.damaged_chunks >= 1
        assert sum(len(p) for p in lost) <= 3 * BLOCK_LEN + max(len(p) for p in payloads)


@pytest.mark.parametrize("min_parallel", [0, 1 << 40])
def test_framing_then_zlib_crc_check_equals_checked_framing(min_parallel: int) -> None:
    # the fast decoder frames without checksums and checks them afterwards (zlib, two threads);
    # any damage must give exactly what the per-chunk checked framing gives
    payloads = _payloads(200, seed=7, big_every=25)
    data = encode_log(payloads)
    rng = np.random.default_rng(8)
    cases = [data, data[: len(data) - 3000]]
    for pos in rng.integers(7, len(data), 25).tolist():
        bad = bytearray(data)
        bad[pos] ^= 0x21
        cases.append(bytes(bad))
    n_damaged = 0
    for case in cases:
        buf = np.frombuffer(case, dtype=np.uint8)
        want = wk.frame_log(buf, wk.CRC_TABLE, _SEEDS, True)
        n_damaged += want[6] > 0
        got = history_fast.frame(buf, min_parallel=min_parallel)
        n_p, n_r = want[4], want[5]
        assert got[4:] == want[4:]
        for a, b, n in zip(got[:4], want[:4], (n_p, n_p, n_r, n_r), strict=True):
            assert np.array_equal(a[:n], b[:n])
    assert n_damaged >= 20  # most flips land in a chunk (a few in block trailers, which are unread)


def test_in_place_join_of_split_records_matches_the_reference_reader(tmp_path) -> None:
    # the fast decoder joins each record's pieces inside the file buffer itself (pieces only move
    # left, overlapping their old place); damaged and truncated logs leave unreferenced pieces
    payloads = _payloads(200, seed=5, big_every=30)
    data = encode_log(payloads)
    rng = np.random.default_rng(6)
    cases = [data, data[: len(data) - 5000]]
    for pos in rng.integers(7, len(data), 12).tolist():
        bad = bytearray(data)
        bad[pos] ^= 0x5A
        cases.append(bytes(bad))
    for case in cases:
        want = [bytes(p) for p in scan_log(case).records()]
        buf = np.frombuffer(bytearray(case), dtype=np.uint8)
        p_start, p_len, r_first, r_n, _, n_rec, _, _ = wk.frame_log(buf, wk.CRC_TABLE, _SEEDS)
        starts, lens = wk.compact_records(buf, p_start, p_len, r_first[:n_rec], r_n[:n_rec])
        got = [buf[s : s + n].tobytes() for s, n in zip(starts.tolist(), lens.tolist(), strict=True)]
        assert got == want
    # the file reader hands back a writable copy of the file
    path = tmp_path / "run-x.wandb"
    path.write_bytes(data)
    buf = read_log_buffer(path)
    assert buf.flags.writeable and buf.tobytes() == data


def test_bad_headers_are_one_clear_error(tmp_path) -> None:
    with pytest.raises(InterplabError, match="not a W&B log"):
        scan_log(b"PK\x03\x04" + bytes(20), "x.wandb")
    with pytest.raises(InterplabError, match="too short"):
        scan_log(b":W&", "x.wandb")
    with pytest.raises(InterplabError, match="unsupported W&B log version 7"):
        scan_log(FILE_HEADER[:6] + b"\x07", "x.wandb")
    with pytest.raises(InterplabError, match="cannot read W&B log"):
        read_log_bytes(tmp_path / "missing.wandb")


@pytest.mark.parametrize("regular", [True, False])
def test_fast_decoder_matches_reference_on_grid_and_ragged_rows(tmp_path, regular: bool) -> None:
    # a regular log (same keys, same order every row) takes the grid path of the fast decoder, a
    # log with keys missing at some steps the sorted one; both must equal the protobuf reference
    import pandas as pd

    from interplab.runs.history_fast import _grid_width
    from interplab.runs.logwriter import write_offline_run
    from interplab.runs.offline import decode_log, decode_log_exact

    rng = np.random.default_rng(7)
    metrics = {f"layer{k}/stat": rng.normal(size=12).round(4) for k in range(40)}
    metrics["count"] = np.arange(12, dtype=np.float64) * 3
    if not regular:
        metrics["layer3/stat"][[2, 5]] = np.nan  # not logged at those steps
    log = write_offline_run(tmp_path, "grid", metrics)
    fast, exact = decode_log(log), decode_log_exact(log)
    pd.testing.assert_frame_equal(fast.history, exact.history)
    assert fast.history.attrs == exact.history.attrs and fast.summary == exact.summary
    assert list(fast.history.columns[:1]) == ["_step"] and len(fast.history) == 12
    # which path ran: the grid is detected only for the regular log
    buf = np.frombuffer(read_log_bytes(log), dtype=np.uint8)
    p_start, p_len, r_first, r_n, _, n_rec, _, _ = wk.frame_log(buf, wk.CRC_TABLE, _SEEDS)
    out = wk.decode_records(buf, p_start[r_first[:n_rec]], p_len[r_first[:n_rec]], r_n[:n_rec] == 1, 1024)
    it_rec, it_key = out[1], out[2]
    rows = np.searchsorted(np.unique(it_rec), it_rec)
    assert (_grid_width(it_key, rows) > 0) == regular


def test_numpy_page_advice_is_off_while_decoding_and_restored_after() -> None:
    from interplab.runs.offline import _numpy_page_advice, _OrdinaryPages

    advise = _numpy_page_advice()
    if advise is None:
        pytest.skip("this numpy has no huge-page switch")
    before = advise(True)
    try:
        pages = _OrdinaryPages()
        with pages():
            assert advise(False) is False  # off inside (and left off)
            with pages():  # a second, overlapping decode
                pass
            assert advise(False) is False  # still off: the outer decode is running
        assert advise(True) is True  # the setting from before is back
    finally:
        advise(before)


def test_number_parsing_on_two_threads_equals_one_thread() -> None:
    import pyarrow as pa

    rng = np.random.default_rng(9)
    texts = [repr(float(x)) for x in rng.normal(size=301)] + ["1e-310", "-0.0", "NaN", "Infinity", "12"]
    data = "".join(texts).encode()
    lengths = np.array([len(t) for t in texts], np.int64)
    starts = np.cumsum(lengths) - lengths
    buf = np.frombuffer(data, np.uint8)
    one = history_fast._parse_numbers(buf, starts, lengths, pa.float64(), min_parallel=1 << 40)
    two = history_fast._parse_numbers(buf, starts, lengths, pa.float64(), min_parallel=0)
    assert np.array_equal(one, two, equal_nan=True)
    assert np.array_equal(one[:301], np.array([float(t) for t in texts[:301]]))
