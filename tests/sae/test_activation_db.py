"""The Parquet activation database: rows equal an independent recomputation of the SAE codes from
``output_hidden_states``; ``ActivationDatabase`` queries equal pandas over the whole database."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from analyze_support import CONTEXT, D_SAE, LAYER, dense_from_db, load_db
from transformers import AutoModelForCausalLM, AutoTokenizer

from interplab.common.errors import InterplabError
from interplab.sae.activation_db import ActivationDatabase
from interplab.sae.formats import load_sae


def test_rows_equal_sae_codes_of_hidden_states(sae_analysis) -> None:
    texts = json.loads(sae_analysis.data.read_text())
    tok = AutoTokenizer.from_pretrained(sae_analysis.model)
    model = AutoModelForCausalLM.from_pretrained(sae_analysis.model).eval()
    sae = load_sae(sae_analysis.sae)
    acts, toks = load_db(sae_analysis.db)
    F_db = dense_from_db(sae_analysis.db)
    assert 20 not in set(toks.text_idx)  # the empty text is skipped
    expected_rows = []
    for text_idx, text in enumerate(texts):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        rows = toks[toks.text_idx == text_idx]
        assert rows.token_id.tolist() == ids
        assert rows.position.tolist() == list(range(len(ids)))
        for start in range(0, len(ids), CONTEXT):
            window = torch.tensor([ids[start : start + CONTEXT]])
            with torch.no_grad():
                hidden = model(input_ids=window, output_hidden_states=True).hidden_states[LAYER + 1][0]
                codes = sae.encode(hidden).numpy()
            token_idx = rows.token_idx.to_numpy()[start : start + CONTEXT]
            np.testing.assert_allclose(F_db[token_idx], codes, rtol=1e-4, atol=1e-5)
            expected_rows.append(int((codes != 0).sum()))
    # one row per non-zero activation, no zero rows, token_idx numbering is contiguous
    assert len(acts) == sum(expected_rows)
    assert (acts.value != 0).all()
    assert toks.token_idx.tolist() == list(range(len(toks)))


def test_schema_and_manifest(sae_analysis) -> None:
    db = sae_analysis.db
    manifest = json.loads((db / "manifest.json").read_text())
    assert manifest["complete"] is True
    assert manifest["schema"]["activations"] == {"token_idx": "int64", "feature": "int32", "value": "float"}
    assert manifest["schema"]["tokens"] == {
        "token_idx": "int64",
        "text_idx": "int64",
        "position": "int32",
        "token_id": "int32",
        "token_str": "string",
    }
    for key in ("model", "sae", "layer", "hook", "data", "context_size"):
        assert key in manifest["fingerprint"]
    shards = manifest["shards"]
    assert len(shards) > 1
    assert shards[0]["window_start"] == 0 and shards[-1]["window_end"] == manifest["n_windows"]
    for a, b in itertools.pairwise(shards):
        assert a["window_end"] == b["window_start"] and a["token_end"] == b["token_start"]
    for s in shards:
        t = pq.read_table(db / s["activations"])
        assert t.num_rows == s["n_rows"]
        assert str(t.schema.field("feature").type) == "int32" and str(t.schema.field("value").type) == "float"
        assert pq.read_table(db / s["tokens"]).num_rows == s["token_end"] - s["token_start"]
    assert manifest["n_rows"] == sum(s["n_rows"] for s in shards)
    # only the last accumulator snapshot is kept
    assert [s["state"] is not None for s in shards] == [False] * (len(shards) - 1) + [True]


def test_queries_equal_pandas(sae_analysis) -> None:
    acts, toks = load_db(sae_analysis.db)
    with ActivationDatabase(sae_analysis.out) as db:  # the analysis folder works too
        assert db.n_tokens == len(toks) and db.d_sae == D_SAE
        for feature in (4, 10, 25):
            got = db.get_feature_activations(feature, top_k=7)
            want = (
                acts[acts.feature == feature]
                .sort_values(["value", "token_idx"], ascending=[False, True])
                .head(7)
            )
            assert got.token_idx.tolist() == want.token_idx.tolist()
            np.testing.assert_array_equal(got.value.to_numpy(), want.value.to_numpy())
            merged = want.merge(toks, on="token_idx")
            assert got.token_str.tolist() == merged.token_str.tolist()
        assert len(db.get_feature_activations(0, top_k=None)) == 0  # a dead feature
        for token_idx in (0, 57, len(toks) - 1):
            got = db.get_token_activations(token_idx, threshold=0.05)
            want = acts[(acts.token_idx == token_idx) & (acts.value > 0.05)].sort_values(
                "value", ascending=False
            )
            assert got.feature.tolist() == want.feature.tolist()
            ctx = db.get_token_context(token_idx, 4)
            text = toks[toks.token_idx == token_idx].text_idx.item()
            want_ctx = toks[(toks.token_idx - token_idx).abs().le(4) & (toks.text_idx == text)]
            assert ctx.token_idx.tolist() == want_ctx.token_idx.tolist()
            assert ctx.is_target.sum() == 1
            shaded = db.get_context_activations(token_idx, 10, 4)
            for row in shaded.itertuples():
                hit = acts[(acts.token_idx == row.token_idx) & (acts.feature == 10)]
                assert row.value == pytest.approx(hit.value.item() if len(hit) else 0.0)
        with pytest.raises(InterplabError, match="out of range"):
            db.get_feature_activations(D_SAE)
        with pytest.raises(InterplabError, match="out of range"):
            db.get_token_context(len(toks))


def test_duckdb_reads_the_folder_directly(sae_analysis) -> None:
    import duckdb

    n = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{sae_analysis.db}/activations/*.parquet')"
    ).fetchall()[0][0]
    assert n == json.loads((sae_analysis.db / "manifest.json").read_text())["n_rows"]


def test_not_a_database(tmp_path) -> None:
    with pytest.raises(InterplabError, match="not an activation database"):
        ActivationDatabase(tmp_path)
