"""The built-in experiment: estimators vs brute-force counting, KL vs scipy, and real offline runs
written with the wandb SDK read back through the runs API."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import entropy

from interplab.common.errors import InterplabError
from interplab.runs import fetch_runs, get_runs_data, get_table
from interplab.runs.experiment import (
    KL_METRICS,
    TABLE_KEY,
    TrainConfig,
    attention_table_frame,
    parse_sweep,
    run_experiment,
    sweep_configs,
)
from interplab.runs.markov import kl_to_model, ngram_estimator, sample_markov
from interplab.runs.phases import auto_phases
from interplab.runs.tiny_transformer import AttnOnlyTransformer, TinyConfig


def brute_force_estimator(seq: list[int], k: int, n: int) -> np.ndarray:
    """Count by hand: for each t, what followed earlier occurrences of the last k-1 tokens (add-one)."""
    T = len(seq)
    out = np.zeros((T, n))
    for t in range(T):
        m = min(k - 1, t + 1)  # context length actually available
        ctx = tuple(seq[t - m + 1 : t + 1]) if m else ()
        counts = np.zeros(n)
        for i in range(m, t + 1):
            if tuple(seq[i - m : i]) == ctx:
                counts[seq[i]] += 1
        out[t] = (counts + 1) / (counts.sum() + n)
    return out


@pytest.mark.parametrize("k", [1, 2, 3])
def test_estimators_match_brute_force_counting(k):
    x = sample_markov(4, 40, 4, rng=np.random.default_rng(k))
    est = ngram_estimator(x, k, 4).numpy()
    for b in range(4):
        np.testing.assert_allclose(est[b], brute_force_estimator(x[b].tolist(), k, 4), rtol=0, atol=1e-12)


def test_estimator_hand_example():
    # sequence 0 1 0 1 0 ; at t=4 (x_t=0) the bigram counts of what followed 0 are {1: 2}
    x = torch.tensor([[0, 1, 0, 1, 0]])
    big = ngram_estimator(x, 2, 3)[0, 4].numpy()
    np.testing.assert_allclose(big, [1 / 5, 3 / 5, 1 / 5])
    uni = ngram_estimator(x, 1, 3)[0, 4].numpy()
    np.testing.assert_allclose(uni, [4 / 8, 3 / 8, 1 / 8])


def test_kl_matches_scipy():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(5), size=(2, 7))
    q = rng.dirichlet(np.ones(5), size=(2, 7))
    expected = entropy(p.reshape(-1, 5), q.reshape(-1, 5), axis=1).mean()
    got = kl_to_model(torch.from_numpy(p), torch.from_numpy(np.log(q)))
    assert float(got) == pytest.approx(expected, rel=1e-12)


def test_samples_follow_their_own_chain():
    x = sample_markov(64, 30, 3, rng=np.random.default_rng(0))
    assert x.shape == (64, 30) and x.dtype == torch.long
    assert int(x.min()) >= 0 and int(x.max()) <= 2
    again = sample_markov(64, 30, 3, rng=np.random.default_rng(0))
    assert torch.equal(x, again)
    # Different sequences have different statistics: bigram frequencies vary across sequences.
    freq = torch.nn.functional.one_hot(x[:, 1:] * 3 + x[:, :-1], 9).float().mean(1)
    assert float(freq.std(0).mean()) > 0.02


def test_attention_table_frame_matches_patterns():
    model = AttnOnlyTransformer(TinyConfig(n_states=3, seq_len=12, d_model=8, n_layers=2, n_heads=2))
    x = torch.randint(0, 3, (2, 12))
    _, patterns = model(x)
    table = attention_table_frame(patterns, 6)
    assert list(table.columns) == ["layer", "head", "query_idx", "key_idx", "weight"]
    assert len(table) == 2 * 2 * (6 * 7 // 2)
    for row in table.sample(20, random_state=0).itertuples():
        expected = patterns[row.layer][0, row.head % 2, row.query_idx, row.key_idx]
        assert row.weight == pytest.approx(float(expected.detach()))
    assert sorted(table["head"].unique()) == [0, 1, 2, 3]


def test_init_scale_shrinks_query_key_weights():
    torch.manual_seed(0)
    a = AttnOnlyTransformer(TinyConfig(init_scale=1.0))
    torch.manual_seed(0)
    b = AttnOnlyTransformer(TinyConfig(init_scale=0.01))
    torch.testing.assert_close(b.layers[0].q.weight, a.layers[0].q.weight * 0.01)
    torch.testing.assert_close(b.layers[1].v.weight, a.layers[1].v.weight)


def test_sweep_parsing_and_grid():
    sweep = parse_sweep(["init_scale=0.01,1.0", "dataset_size=0,500"])
    assert sweep == {"init_scale": [0.01, 1.0], "dataset_size": [0, 500]}
    grid = sweep_configs(2, sweep)
    assert len(grid) == 8
    assert {(c.init_scale, c.dataset_size, c.seed) for c in grid} == {
        (s, d, seed) for s in (0.01, 1.0) for d in (0, 500) for seed in (0, 1)
    }
    with pytest.raises(InterplabError, match="unknown sweep key 'depth'"):
        parse_sweep(["depth=1,2"])
    with pytest.raises(InterplabError, match="KEY=V1,V2"):
        parse_sweep(["init_scale"])
    with pytest.raises(InterplabError, match="not a list of int"):
        parse_sweep(["dataset_size=1.5x"])


def test_experiment_runs_read_back(markov_experiment):
    result = markov_experiment
    runs = fetch_runs(result.out)
    assert sorted(r.name for r in runs) == ["init_scale=0.5-seed=0", "init_scale=1.0-seed=0"]
    by_id = {r.id: r for r in runs}
    for rec in result.runs:
        run = by_id[rec.id]
        assert run.state == "finished"
        assert run.config["init_scale"] == rec.config["init_scale"]
        assert run.config["dataset_size"] == 0 and run.config["n_states"] == 3
        assert set(run.tags) == {"markov-icl", f"init_scale={rec.config['init_scale']}"}
        hist = run.history()
        last = hist[hist["_step"] == 30].iloc[0]
        for key in ("val_loss", *KL_METRICS, "train_loss"):
            assert last[key] == rec.final[key]  # exactly what was logged
        steps = hist.dropna(subset=["val_loss"])["_step"].tolist()
        assert steps == list(range(0, 31, 3))
        table = get_table(run, TABLE_KEY, step=15)
        assert list(table.columns) == ["layer", "head", "query_idx", "key_idx", "weight"]
        assert (table["key_idx"] <= table["query_idx"]).all()
        sums = table.groupby(["head", "query_idx"])["weight"].sum().to_numpy()
        np.testing.assert_allclose(sums, 1.0, atol=1e-5)
    summary = json.loads((result.out / "experiment.json").read_text())
    assert [r["id"] for r in summary["runs"]] == [r.id for r in result.runs]
    manifest = json.loads((result.out / "manifest.json").read_text())
    assert "experiment.json" in manifest["files"]


def test_experiment_rejects_bad_settings(tmp_path):
    with pytest.raises(InterplabError, match="unknown experiment setting 'widht'"):
        run_experiment(tmp_path / "x", seeds=1, widht=3)
    with pytest.raises(InterplabError, match="seeds"):
        run_experiment(tmp_path / "x", seeds=0)
    with pytest.raises(InterplabError, match="n_states"):
        run_experiment(tmp_path / "x", seeds=1, sweep={"n_states": [1]})
    assert not (tmp_path / "x").exists()  # validated before anything was written


def test_unigram_then_bigram_phase(tmp_path):
    """The known ICL-Markov dynamics: the 1-token-context estimator is matched first, then the bigram."""
    result = run_experiment(
        tmp_path, seeds=1, sweep={"init_scale": [1.0]}, steps=400, eval_every=40, n_val=128
    )
    df = get_runs_data(fetch_runs(result.out), list(KL_METRICS))
    phases = auto_phases(df, KL_METRICS)
    assert phases[0].metric == "kl_div_prefix_1_teacher_val"
    assert phases[-1].metric == "kl_div_prefix_2_teacher_val"
    assert isinstance(df, pd.DataFrame) and df["_step"].max() == 400


def test_finite_dataset_draws_from_fixed_sequences(tmp_path):
    cfg = TrainConfig(dataset_size=5)
    assert cfg.dataset_size == 5
    result = run_experiment(tmp_path, seeds=1, sweep={"dataset_size": [5]}, steps=10, n_val=16)
    run = fetch_runs(result.out)[0]
    assert run.config["dataset_size"] == 5
    assert np.isfinite(run.summary["val_loss"])
