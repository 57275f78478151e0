"""Decode a framed W&B log into a :class:`RunLog` (fast path for numeric history records)."""

from __future__ import annotations

from interplab.runs.leveldb_log import LogScan
from interplab.runs.records import RunLog, RunLogBuilder, parse_record


def decode_scan(scan: LogScan) -> RunLog:
    """Apply every record of ``scan`` in order."""
    builder = RunLogBuilder()
    for payload in scan.records():
        builder.apply(parse_record(payload))
    log = builder.finish()
    log.n_records = len(scan)
    return log
