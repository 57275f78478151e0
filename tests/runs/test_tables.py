"""Tables logged with wandb.Table in SDK runs, read back through the history row that logged them."""

from __future__ import annotations

import pytest

from interplab.common.errors import InterplabError
from interplab.runs import fetch_run, get_table, table_keys

from .conftest import TABLE_STEPS, WrittenRuns


def test_every_logged_table_reads_back_exactly(sdk_runs: WrittenRuns) -> None:
    for name, spec in sdk_runs.runs.items():
        run = fetch_run(sdk_runs.root, name)
        assert table_keys(run) == ["val_attention_weights"]
        for step in TABLE_STEPS:
            df = get_table(run, "val_attention_weights", step=step)
            assert df.columns.tolist() == ["head", "query_idx", "key_idx", "weight"]
            assert df.values.tolist() == spec.tables[step]
        last = get_table(run)  # default key, last step
        assert last.values.tolist() == spec.tables[max(TABLE_STEPS)]


def test_table_errors_list_what_exists(sdk_runs: WrittenRuns, tmp_path) -> None:
    run = fetch_run(sdk_runs.root, "alpha")
    with pytest.raises(InterplabError, match=r"not logged at step 5; steps: 0, 1000, 1990"):
        get_table(run, step=5)
    with pytest.raises(
        InterplabError, match=r"no table 'attn' logged in run .*tables logged: val_attention_weights"
    ):
        get_table(run, "attn")
    with pytest.raises(InterplabError, match=r"no table 'loss' logged"):
        get_table(run, "loss")
