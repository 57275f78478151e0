"""Compiled (numba) kernels for the hot path of reading W&B logs.

* :func:`frame_log` — the LevelDB framing and CRC check of :func:`interplab.runs.leveldb_log.scan_log`
  (same rules: bad chunk skipped, partial tail ends the scan), returning record spans as arrays;
* :func:`decode_records` — a protobuf wire-format scan of single-chunk records that decodes the
  two record kinds that make up almost all of a log — ``history`` and ``summary`` — into flat
  arrays (item → row, interned key, value span, value class); every other record, and any record
  whose shape is unexpected, is left for the protobuf library.

Field numbers (from ``wandb_internal.proto``): Record.num=1, history=2, summary=3, control=16,
uuid=19, _info=200; HistoryRecord.item=1, step=2; HistoryItem/SummaryItem key=1, nested_key=2,
value_json=16; SummaryRecord.update=1, remove=2; HistoryStep.num=1.
"""

from __future__ import annotations

import numpy as np
from numba import njit

BLOCK = 32768
HEADER = 7

# record kinds returned by decode_records
KIND_SLOW = 0  # decode with protobuf
KIND_HISTORY = 1
KIND_SUMMARY = 2
KIND_HISTORY_SLOW = 3  # a history row (counted) whose items need protobuf

# value classes
V_FLOAT = 0  # a JSON number with fraction/exponent, or NaN / Infinity / -Infinity
V_INT = 1  # a JSON integer literal of at most 18 digits
V_OTHER = 2  # anything else (string, bool, null, list, object): json.loads in Python


def _crc_table() -> np.ndarray:
    """CRC-32 (IEEE, reflected 0xEDB88320) tables for slicing-by-8: shape (8, 256)."""
    table = np.zeros((8, 256), dtype=np.uint32)
    for n in range(256):
        c = n
        for _ in range(8):
            c = (0xEDB88320 ^ (c >> 1)) if c & 1 else (c >> 1)
        table[0, n] = c
    for k in range(1, 8):
        for n in range(256):
            prev = int(table[k - 1, n])
            table[k, n] = (prev >> 8) ^ int(table[0, prev & 0xFF])
    return table


CRC_TABLE = _crc_table()


@njit(cache=True, nogil=True)
def _crc32(buf, start, end, seed, t):  # pragma: no cover - compiled
    """zlib.crc32(buf[start:end], seed), eight bytes per step."""
    c = np.uint32(seed) ^ np.uint32(0xFFFFFFFF)
    i = start
    while i + 8 <= end:
        one = c ^ (
            np.uint32(buf[i])
            | (np.uint32(buf[i + 1]) << np.uint32(8))
            | (np.uint32(buf[i + 2]) << np.uint32(16))
            | (np.uint32(buf[i + 3]) << np.uint32(24))
        )
        c = (
            t[7, one & 0xFF]
            ^ t[6, (one >> np.uint32(8)) & 0xFF]
            ^ t[5, (one >> np.uint32(16)) & 0xFF]
            ^ t[4, one >> np.uint32(24)]
            ^ t[3, buf[i + 4]]
            ^ t[2, buf[i + 5]]
            ^ t[1, buf[i + 6]]
            ^ t[0, buf[i + 7]]
        )
        i += 8
    while i < end:
        c = t[0, (c ^ buf[i]) & 0xFF] ^ (c >> np.uint32(8))
        i += 1
    return c ^ np.uint32(0xFFFFFFFF)


@njit(cache=True, nogil=True)
def frame_log(buf, table, type_seeds, check_crc=True):  # pragma: no cover - compiled
    """Frame a whole log (header already checked). Returns
    (piece_start, piece_len, rec_first_piece, rec_n_pieces, n_pieces, n_records, damaged, partial).

    ``check_crc=False`` trusts every checksum: the caller then checks the pieces itself (and frames
    again with checks when one fails, since a damaged chunk changes the framing)."""
    size = buf.shape[0]
    cap = size // HEADER + 2
    piece_start = np.empty(cap, dtype=np.int64)
    piece_len = np.empty(cap, dtype=np.int64)
    rec_first = np.empty(cap, dtype=np.int64)
    rec_n = np.empty(cap, dtype=np.int64)
    n_pieces = 0
    n_rec = 0
    damaged = 0
    partial = False
    pending = -1  # index of the first piece of an open FIRST…LAST record
    pos = HEADER
    while True:
        block_end = (pos // BLOCK + 1) * BLOCK
        if block_end - pos < HEADER:
            pos = block_end
            block_end += BLOCK
        if pos + HEADER > size:
            if pos < size:
                for i in range(pos, size):
                    if buf[i] != 0:
                        partial = True
                        break
            break
        crc = (
            np.uint32(buf[pos])
            | (np.uint32(buf[pos + 1]) << np.uint32(8))
            | (np.uint32(buf[pos + 2]) << np.uint32(16))
            | (np.uint32(buf[pos + 3]) << np.uint32(24))
        )
        length = np.int64(buf[pos + 4]) | (np.int64(buf[pos + 5]) << 8)
        kind = np.int64(buf[pos + 6])
        start = pos + HEADER
        end = start + length
        if kind == 0 and length == 0 and crc == 0:
            pos = block_end
            continue
        if end > size:
            partial = True
            break
        bad = end > block_end or kind < 1 or kind > 4
        if not bad and check_crc:
            bad = _crc32(buf, start, end, type_seeds[kind], table) != crc
        if bad:
            damaged += 1
            pending = -1
            pos = end if end <= block_end else block_end
            continue
        pos = end
        if kind == 1 or kind == 2:  # FULL / FIRST: a record still open is cut short
            if pending >= 0:
                damaged += 1
            pending = n_pieces
        elif pending < 0:  # MIDDLE / LAST without its FIRST
            damaged += 1
            continue
        piece_start[n_pieces] = start
        piece_len[n_pieces] = length
        n_pieces += 1
        if kind == 1 or kind == 4:  # FULL / LAST: the record is complete
            rec_first[n_rec] = pending
            rec_n[n_rec] = n_pieces - pending
            n_rec += 1
            pending = -1
    if pending >= 0:
        partial = True
    return piece_start, piece_len, rec_first, rec_n, n_pieces, n_rec, damaged, partial


@njit(cache=True, nogil=True, inline="always")
def _varint(buf, pos, end):  # pragma: no cover - compiled
    """(value, new_pos); new_pos = -1 when malformed or past ``end``."""
    result = np.int64(0)
    shift = 0
    while pos < end and shift < 64:
        b = np.int64(buf[pos])
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
    return np.int64(0), -1


@njit(cache=True, nogil=True, inline="always")
def _key(buf, pos, end):  # pragma: no cover - compiled
    """(field number, wire type, new_pos) of the field key at ``pos``; new_pos = -1 when malformed."""
    tag, pos = _varint(buf, pos, end)
    return tag >> 3, tag & 7, pos


@njit(cache=True, nogil=True, inline="always")
def _length(buf, pos, end):  # pragma: no cover - compiled
    """(n, new_pos) of the length prefix at ``pos``; new_pos = -1 when malformed or when the ``n``
    bytes of the value run past ``end``."""
    n, pos = _varint(buf, pos, end)
    if pos < 0 or pos + n > end:
        return n, -1
    return n, pos


@njit(cache=True, nogil=True, inline="always")
def _delimited(buf, pos, end):  # pragma: no cover - compiled
    """(field number, value start, n) of the length-delimited field at ``pos``; value start = -1
    when the field is malformed or of another wire type."""
    field, wire, pos = _key(buf, pos, end)
    if pos < 0 or wire != 2:
        return field, -1, 0
    n, pos = _length(buf, pos, end)
    return field, pos, n


@njit(cache=True, nogil=True)
def _skip_field(buf, pos, end, wire):  # pragma: no cover - compiled
    """Position after a field's value of wire type ``wire``; -1 if unsupported/malformed."""
    if wire == 0:
        _, pos = _varint(buf, pos, end)
        return pos
    if wire == 2:
        n, pos = _length(buf, pos, end)
        return pos + n if pos >= 0 else -1
    if wire == 1:
        return pos + 8 if pos + 8 <= end else -1
    if wire == 5:
        return pos + 4 if pos + 4 <= end else -1
    return -1


@njit(cache=True, nogil=True, inline="always")
def _record_body(buf, start, end):  # pragma: no cover - compiled
    """(ok, which, body start, body end) of the Record at buf[start:end]: ``which`` is its oneof
    field, 2 = history or 3 = summary (0 for neither); beside it only num, control, uuid and _info
    may appear, anything else (or a malformed field) gives ok = False."""
    which = 0
    sub_start = -1
    sub_end = -1
    pos = start
    while pos < end:
        field, wire, pos = _key(buf, pos, end)
        if pos < 0:
            return False, which, sub_start, sub_end
        if (field == 2 or field == 3) and wire == 2:
            n, pos = _length(buf, pos, end)
            if pos < 0 or which != 0:
                return False, which, sub_start, sub_end
            which = field
            sub_start = pos
            sub_end = pos + n
            pos = sub_end
        elif field == 1 or field == 16 or field == 19 or field == 200:
            pos = _skip_field(buf, pos, end, wire)
            if pos < 0:
                return False, which, sub_start, sub_end
        else:
            return False, which, sub_start, sub_end
    return True, which, sub_start, sub_end


@njit(cache=True, nogil=True, inline="always")
def _item(buf, pos, end, cur_ps, cur_pl):  # pragma: no cover - compiled
    """The HistoryItem / SummaryItem at buf[pos:end] — key (1), nested_key (2, repeated),
    value_json (16): its key path into ``cur_ps``/``cur_pl`` (a plain key is a one-part path) and
    (number of parts, value start, value length); -1 parts when malformed or too deeply nested."""
    n_cur = 0
    key_s = -1
    key_l = 0
    v_s = -1
    v_l = 0
    while pos < end:
        field, pos, m = _delimited(buf, pos, end)
        if pos < 0:
            return -1, v_s, v_l
        if field == 1:
            key_s = pos
            key_l = m
        elif field == 2:
            if n_cur >= cur_ps.shape[0]:
                return -1, v_s, v_l
            cur_ps[n_cur] = pos
            cur_pl[n_cur] = m
            n_cur += 1
        elif field == 16:
            v_s = pos
            v_l = m
        else:
            return -1, v_s, v_l
        pos += m
    if n_cur == 0:
        if key_s < 0:
            return -1, v_s, v_l
        cur_ps[0] = key_s
        cur_pl[0] = key_l
        n_cur = 1
    return n_cur, v_s, v_l


@njit(cache=True, nogil=True)
def _classify(buf, start, n):  # pragma: no cover - compiled
    """Value class of the JSON text buf[start:start+n]."""
    if n == 0:
        return V_OTHER
    c = buf[start]
    if c == 78:  # N
        if n == 3 and buf[start + 1] == 97 and buf[start + 2] == 78:
            return V_FLOAT
        return V_OTHER
    i = start
    stop = start + n
    if c == 45:  # '-'
        i += 1
        if i < stop and buf[i] == 73:  # -Infinity
            return V_FLOAT if n == 9 else V_OTHER
    elif c == 73:  # Infinity
        return V_FLOAT if n == 8 else V_OTHER
    if i >= stop or buf[i] < 48 or buf[i] > 57:
        return V_OTHER
    is_int = True
    digits = 0
    for j in range(i, stop):
        d = buf[j]
        if 48 <= d <= 57:
            digits += 1
        elif d == 46 or d == 101 or d == 69 or d == 43 or d == 45:
            is_int = False
        else:
            return V_OTHER
    if is_int:
        return V_INT if digits <= 18 else V_OTHER
    return V_FLOAT


@njit(cache=True, nogil=True, inline="always")
def _same_path(buf, part_start, part_len, first, count, cur_ps, cur_pl, n_cur):  # pragma: no cover - compiled
    """Whether the key whose parts are ``part_*[first:first+count]`` has the bytes of the current
    item's ``n_cur`` parts (``cur_ps``/``cur_pl``)."""
    if count != n_cur:
        return False
    for q in range(n_cur):
        ps = part_start[first + q]
        pl = part_len[first + q]
        if pl != cur_pl[q]:
            return False
        cs = cur_ps[q]
        for b in range(pl):
            if buf[ps + b] != buf[cs + b]:
                return False
    return True


@njit(cache=True, nogil=True)
def decode_records(buf, rec_start, rec_len, rec_single, max_keys):  # pragma: no cover - compiled
    """Decode history and summary records (see module doc). Returns a tuple of arrays:

    kinds[n_rec],
    items: it_rec (record index), it_key, it_class, it_vstart, it_vlen (count n_items) — history values;
    ops: op_rec, op_key, op_vstart, op_vlen, op_remove — the last summary update/removal of each
    key, in log order;
    keys: key_part_first, key_part_count (count n_keys) into parts: part_start, part_len;
    per key: its first history item and last summary op (-1 if none);
    collision (two paths with one hash), overflow (more than ``max_keys`` distinct keys: call again
    with a larger ``max_keys``).
    """
    n_rec = rec_start.shape[0]
    kinds = np.zeros(n_rec, dtype=np.int8)
    total = 0
    for r in range(n_rec):
        total += rec_len[r]
    cap = total // 6 + 16
    it_row = np.empty(cap, dtype=np.int64)
    it_key = np.empty(cap, dtype=np.int32)
    it_class = np.empty(cap, dtype=np.int8)
    it_vstart = np.empty(cap, dtype=np.int64)
    it_vlen = np.empty(cap, dtype=np.int64)
    # summary ops: only the last per key is kept (a wide run updates every key at every step); the
    # ops of the record being decoded wait in a scratch list and count once the record is good
    longest = 0
    for r in range(n_rec):
        longest = max(longest, rec_len[r])
    s_cap = longest // 2 + 16  # an item takes at least two bytes
    s_key = np.empty(s_cap, dtype=np.int64)
    s_vstart = np.empty(s_cap, dtype=np.int64)
    s_vlen = np.empty(s_cap, dtype=np.int64)
    s_remove = np.empty(s_cap, dtype=np.bool_)
    key_op_seq = np.full(max_keys, -1, dtype=np.int64)
    key_op_rec = np.empty(max_keys, dtype=np.int64)
    key_op_vstart = np.empty(max_keys, dtype=np.int64)
    key_op_vlen = np.empty(max_keys, dtype=np.int64)
    key_op_remove = np.empty(max_keys, dtype=np.bool_)
    key_hash = np.empty(max_keys, dtype=np.uint64)
    key_first = np.empty(max_keys, dtype=np.int64)
    key_count = np.empty(max_keys, dtype=np.int64)
    part_start = np.empty(4 * max_keys, dtype=np.int64)
    part_len = np.empty(4 * max_keys, dtype=np.int64)
    overflow = False
    key_first_item = np.full(max_keys, -1, dtype=np.int64)
    n_slots = 1
    while n_slots < 2 * max_keys:  # the table stays at most half full
        n_slots *= 2
    slot_hash = np.zeros(n_slots, dtype=np.uint64)
    slot_kid = np.full(n_slots, -1, dtype=np.int64)
    n_items = 0
    n_ops = 0
    n_keys = 0
    n_parts = 0
    collision = False
    # per kind (history, summary) and position in the record: the key id seen there last
    n_pred = 4 * max_keys
    pred = np.full((2, n_pred), -1, dtype=np.int64)
    # scratch: parts of the current item
    cur_ps = np.empty(64, dtype=np.int64)
    cur_pl = np.empty(64, dtype=np.int64)
    for r in range(n_rec):
        ok, which, sub_start, sub_end = _record_body(buf, rec_start[r], rec_start[r] + rec_len[r])
        if not ok or which == 0 or not rec_single[r]:
            kinds[r] = KIND_HISTORY_SLOW if which == 2 else KIND_SLOW
            continue
        # --- items of a HistoryRecord (field 1) or SummaryRecord (update 1 / remove 2)
        j_item = 0
        save_items = n_items
        n_s = 0
        pos = sub_start
        good = True
        while pos < sub_end:
            # every field of HistoryRecord / SummaryRecord is length-delimited
            field, pos, n = _delimited(buf, pos, sub_end)
            if pos < 0:
                good = False
                break
            item_end = pos + n
            if field == 200 or (which == 2 and field == 2):  # _info / step: not needed
                pos = item_end
                continue
            if field != 1 and not (which == 3 and field == 2):
                good = False
                break
            n_cur, v_s, v_l = _item(buf, pos, item_end, cur_ps, cur_pl)
            if n_cur < 0:
                good = False
                break
            is_remove = which == 3 and field == 2
            if v_s < 0 and not is_remove:
                good = False
                break
            # the key at this position of the previous record of the same kind is the likely one
            # (the SDK logs the same keys in the same order): compare bytes before hashing
            kid = np.int64(-1)
            if j_item < n_pred:
                pk = pred[which - 2, j_item]
                if pk >= 0 and _same_path(
                    buf, part_start, part_len, key_first[pk], key_count[pk], cur_ps, cur_pl, n_cur
                ):
                    kid = pk
            if kid < 0:
                # hash the path (FNV-1a over bytes, 0xFF between parts)
                h = np.uint64(14695981039346656037)
                for q in range(n_cur):
                    for b in range(cur_ps[q], cur_ps[q] + cur_pl[q]):
                        h = (h ^ np.uint64(buf[b])) * np.uint64(1099511628211)
                    h = (h ^ np.uint64(255)) * np.uint64(1099511628211)
                mask = slot_hash.shape[0] - 1
                slot = np.int64(h & np.uint64(mask))
                kid = np.int64(-1)
                while slot_kid[slot] >= 0:
                    if slot_hash[slot] == h:
                        kid = slot_kid[slot]
                        break
                    slot = (slot + 1) & mask
                if kid < 0:
                    if n_keys >= max_keys or n_parts + n_cur > 4 * max_keys:
                        overflow = True
                        break
                    kid = n_keys
                    slot_hash[slot] = h
                    slot_kid[slot] = kid
                    key_hash[kid] = h
                    key_first[kid] = n_parts
                    key_count[kid] = n_cur
                    for q in range(n_cur):
                        part_start[n_parts] = cur_ps[q]
                        part_len[n_parts] = cur_pl[q]
                        n_parts += 1
                    n_keys += 1
                elif not _same_path(
                    buf, part_start, part_len, key_first[kid], key_count[kid], cur_ps, cur_pl, n_cur
                ):
                    collision = True  # the bytes differ from the key's first occurrence: fatal
            if j_item < n_pred:
                pred[which - 2, j_item] = kid
            j_item += 1
            if which == 2:
                if key_first_item[kid] < 0:
                    key_first_item[kid] = n_items
                it_row[n_items] = r
                it_key[n_items] = kid
                it_class[n_items] = _classify(buf, v_s, v_l)
                it_vstart[n_items] = v_s
                it_vlen[n_items] = v_l
                n_items += 1
            else:
                s_key[n_s] = kid
                s_vstart[n_s] = v_s
                s_vlen[n_s] = v_l
                s_remove[n_s] = is_remove
                n_s += 1
            pos = item_end
        if overflow:
            break
        if not good:
            for k in range(n_keys):  # undo this record's effect on the per-key indices (rare)
                if key_first_item[k] >= save_items:
                    key_first_item[k] = -1
            n_items = save_items
            kinds[r] = KIND_HISTORY_SLOW if which == 2 else KIND_SLOW
            continue
        for j in range(n_s):
            k = s_key[j]
            key_op_seq[k] = n_ops
            key_op_rec[k] = r
            key_op_vstart[k] = s_vstart[j]
            key_op_vlen[k] = s_vlen[j]
            key_op_remove[k] = s_remove[j]
            n_ops += 1
        kinds[r] = KIND_HISTORY if which == 2 else KIND_SUMMARY
    # the last op of each key, in log order
    n_last = 0
    for k in range(n_keys):
        if key_op_seq[k] >= 0:
            n_last += 1
    with_op = np.empty(n_last, dtype=np.int64)
    n_last = 0
    for k in range(n_keys):
        if key_op_seq[k] >= 0:
            with_op[n_last] = k
            n_last += 1
    with_op = with_op[np.argsort(key_op_seq[with_op])]
    op_key = with_op.astype(np.int32)
    op_rec = key_op_rec[with_op]
    op_vstart = key_op_vstart[with_op]
    op_vlen = key_op_vlen[with_op]
    op_remove = key_op_remove[with_op]
    key_last_op = np.full(n_keys, -1, dtype=np.int64)
    for i in range(n_last):
        key_last_op[with_op[i]] = i
    return (
        kinds,
        it_row[:n_items],
        it_key[:n_items],
        it_class[:n_items],
        it_vstart[:n_items],
        it_vlen[:n_items],
        op_rec,
        op_key,
        op_vstart,
        op_vlen,
        op_remove,
        key_first[:n_keys],
        key_count[:n_keys],
        part_start[:n_parts],
        part_len[:n_parts],
        key_first_item[:n_keys],
        key_last_op,
        collision,
        overflow,
    )


@njit(cache=True, nogil=True)
def gather_bytes(buf, starts, lengths):  # pragma: no cover - compiled
    """Concatenate buf[starts[i]:starts[i]+lengths[i]]; returns (data, int64 offsets)."""
    n = starts.shape[0]
    offsets = np.empty(n + 1, dtype=np.int64)
    offsets[0] = 0
    for i in range(n):
        offsets[i + 1] = offsets[i] + lengths[i]
    out = np.empty(offsets[n], dtype=np.uint8)
    for i in range(n):
        s = starts[i]
        o = offsets[i]
        m = lengths[i]
        if m > 64:  # a slice copy is a memcpy: far faster for the ~32 KiB pieces of split records
            out[o : o + m] = buf[s : s + m]
        else:
            for j in range(m):
                out[o + j] = buf[s + j]
    return out, offsets


@njit(cache=True, nogil=True)
def compact_records(buf, piece_start, piece_len, rec_first, rec_n):  # pragma: no cover - compiled
    """Move every record's pieces to the front of ``buf``, in place and back to back, so each record
    is one span; returns (rec_start, rec_len). Safe in place: a piece only ever moves left (each
    one follows at least one chunk header), and a slice copy handles the overlap like memmove."""
    n_rec = rec_first.shape[0]
    rec_start = np.empty(n_rec, dtype=np.int64)
    rec_len = np.empty(n_rec, dtype=np.int64)
    o = 0
    for r in range(n_rec):
        rec_start[r] = o
        for p in range(rec_first[r], rec_first[r] + rec_n[r]):
            s = piece_start[p]
            m = piece_len[p]
            buf[o : o + m] = buf[s : s + m]
            o += m
        rec_len[r] = o - rec_start[r]
    return rec_start, rec_len
