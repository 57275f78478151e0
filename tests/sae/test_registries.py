"""The extension points are registries: SAE formats, similarity and co-occurrence metrics. A new
entry is picked up by detection/loading, ranking, the CLI help and the docs table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from interplab.common.errors import InterplabError
from interplab.sae import formats
from interplab.sae.cooccurrence import METRICS as COOCCURRENCE
from interplab.sae.cooccurrence import dense_metric, sparse_metric, topk_neighbours
from interplab.sae.metric import SIMILARITY, Metric, metrics_table
from interplab.sae.model import SAE, SAEConfig
from interplab.sae.similarity import row_topk, similarity_topk

DOCS = Path(__file__).resolve().parents[2] / "docs" / "sae-analysis.md"


def test_docs_tables_are_the_generated_ones() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert metrics_table(SIMILARITY) in text
    assert metrics_table(COOCCURRENCE) in text


def test_cli_help_lists_every_registered_metric() -> None:
    from typer.testing import CliRunner

    from interplab.cli import app

    out = CliRunner().invoke(app, ["sae", "analyze", "--help"], env={"COLUMNS": "200"}).output
    for name in (*SIMILARITY, *COOCCURRENCE):
        assert name in out


def test_distance_neighbours_are_the_smallest() -> None:
    """euclidean is a distance: its nearest neighbours are the smallest values (brute force)."""
    g = torch.Generator().manual_seed(0)
    W = torch.randn(40, 6, generator=g)
    D = np.linalg.norm(W.numpy()[:, None, :] - W.numpy()[None, :, :], axis=-1)
    np.fill_diagonal(D, np.inf)
    idx, val = similarity_topk(W, 3, "euclidean")
    np.testing.assert_array_equal(idx, np.argsort(D, axis=1, kind="stable")[:, :3])
    np.testing.assert_allclose(val, np.sort(D, axis=1)[:, :3], rtol=1e-4, atol=1e-5)
    i7, v7 = row_topk(W, 7, 3, "euclidean")
    np.testing.assert_allclose(v7, val[7], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(i7, idx[7])
    # topk_neighbours on the dense matrix ranks by the registry's direction
    full = D.copy()
    np.fill_diagonal(full, 0.0)
    nb = topk_neighbours(full, 3, largest=SIMILARITY["euclidean"].larger_is_more_related)
    np.testing.assert_array_equal(nb[0], idx)


def test_cooccurrence_metrics_dense_and_sparse_agree_with_the_formulas() -> None:
    rng = np.random.default_rng(0)
    F = (rng.random((300, 12)) < 0.2).astype(np.int64)
    F[:, 3] = 0  # a dead feature: zero variance
    C = F.T @ F
    n = np.diag(C).astype(float)
    N = F.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = {
            "phi": np.nan_to_num(np.corrcoef(F.T.astype(float)), nan=0.0),
            "jaccard": np.where((n[:, None] + n[None, :] - C) > 0, C / (n[:, None] + n[None, :] - C), 0.0),
            "pmi": np.where(C > 0, np.log(C * N / np.outer(n, n)), -np.inf),
        }
    import scipy.sparse as sp

    for name in COOCCURRENCE:
        dense = dense_metric(C, N, name)
        np.testing.assert_allclose(dense, expected[name], rtol=1e-5, atol=1e-6)
        sparse = sparse_metric(sp.csr_array(C), N, name).toarray()
        stored = C > 0
        np.testing.assert_allclose(sparse[stored], expected[name][stored], rtol=1e-5, atol=1e-6)
    with pytest.raises(InterplabError, match=r"co-occurrence metric.*phi, jaccard, pmi"):
        dense_metric(C, N, "cosine")


def test_a_new_metric_is_one_entry(monkeypatch) -> None:
    """An entry added to the co-occurrence registry is computed through it (here: raw counts)."""
    monkeypatch.setitem(
        COOCCURRENCE,
        "count",
        Metric("`C_ij`", dense=lambda c, n, N: c.astype(np.float32), sparse=lambda c, ni, nj, N: c),
    )
    C = np.array([[3, 1], [1, 2]])
    np.testing.assert_array_equal(dense_metric(C, 10, "count"), C)
    assert "`count`" in metrics_table(COOCCURRENCE)


def test_a_new_format_is_one_entry(tmp_path, monkeypatch) -> None:
    """A format registered as one FormatEntry is detected, loaded and listed in errors."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "mine.marker").write_text("32 64")

    def load(path: Path, dtype: torch.dtype, device: object) -> SAE:
        d_in, d_sae = map(int, (path / "mine.marker").read_text().split())
        cfg = SAEConfig(d_in=d_in, d_sae=d_sae, architecture="standard")
        return SAE.from_weights(
            cfg,
            W_enc=torch.ones(d_in, d_sae),
            W_dec=torch.ones(d_sae, d_in),
            b_enc=torch.zeros(d_sae),
            b_dec=torch.zeros(d_in),
        )

    monkeypatch.setitem(
        formats.FORMATS,
        "mine",
        formats.FormatEntry(detect=lambda p: (p / "mine.marker").is_file(), load=load, files="mine.marker"),
    )
    assert formats.detect_format(folder) == "mine"
    sae = formats.load_sae(folder)
    assert (sae.d_in, sae.d_sae) == (32, 64)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InterplabError, match=r"expected one of: .*mine\.marker"):
        formats.load_sae(empty)
