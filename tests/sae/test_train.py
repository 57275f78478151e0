"""The TopK trainer writes a loadable SAELens folder whose loss went down."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from interplab.cli import app
from interplab.common.errors import InterplabError
from interplab.sae.formats import load_history, load_sae
from interplab.sae.train import geometric_median, train_sae


def test_train_writes_loadable_folder(tiny_models, tiny_text_file, tmp_path):
    out = tmp_path / "sae"
    r = train_sae(
        model=str(tiny_models["gpt2"]),
        layer=1,
        hook="hook_resid_post",
        data=str(tiny_text_file),
        d_sae=64,
        k=4,
        steps=120,
        out=out,
        batch_size=128,
        lr=3e-3,
        seed=0,
        log_every=10,
    )
    for name in (
        "cfg.json",
        "sae_weights.safetensors",
        "history.json",
        "manifest.json",
        "train_summary.json",
    ):
        assert (out / name).exists(), name
    sae = load_sae(out)
    assert (sae.cfg.architecture, sae.cfg.k, sae.d_in, sae.d_sae) == ("topk", 4, 32, 64)
    assert sae.cfg.hook_name == "blocks.1.hook_resid_post" and sae.cfg.apply_b_dec_to_input
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(64), rtol=1e-5, atol=1e-5)
    hist = load_history(out)
    assert hist == json.loads(json.dumps(r.history))
    assert [h["step"] for h in hist][:3] == [1, 10, 20] and hist[-1]["step"] == 120
    for key in ("loss", "mse", "l0", "explained_variance", "dead_fraction", "fvu"):
        assert key in hist[-1]
    first = sum(h["loss"] for h in hist[:2]) / 2
    last = sum(h["loss"] for h in hist[-2:]) / 2
    assert last < 0.7 * first
    assert all(h["l0"] <= 4 for h in hist)
    # the final metrics describe the saved SAE on the collected tokens
    assert r.final["explained_variance"] > 0 and r.final["l0"] <= 4
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"] == "sae train" and "sae_weights.safetensors" in manifest["files"]


def test_train_is_reproducible(tiny_models, tiny_text_file, tmp_path):
    kwargs = dict(
        model=str(tiny_models["llama"]),
        layer=0,
        hook="hook_mlp_out",
        data=str(tiny_text_file),
        d_sae=48,
        k=3,
        steps=15,
        batch_size=64,
        seed=3,
    )
    a = train_sae(out=tmp_path / "a", **kwargs)
    b = train_sae(out=tmp_path / "b", **kwargs)
    torch.testing.assert_close(a.sae.W_dec, b.sae.W_dec)
    assert a.history == b.history


def test_wandb_offline_run(tiny_models, tiny_text_file, tmp_path):
    out = tmp_path / "wb"
    res = CliRunner().invoke(
        app,
        [
            "sae",
            "train",
            "--model",
            str(tiny_models["gpt2"]),
            "--layer",
            "0",
            "--data",
            str(tiny_text_file),
            "--d-sae",
            "32",
            "--k",
            "2",
            "--steps",
            "20",
            "--batch-size",
            "64",
            "--out",
            str(out),
            "--wandb",
            "offline",
        ],
    )
    assert res.exit_code == 0, res.output
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("*.wandb")), "no .wandb log file"
    assert load_sae(out).cfg.k == 2


def test_geometric_median_matches_definition():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 3, generator=g)
    x[:20] += 50  # outliers pull the mean, barely the median
    m = geometric_median(x, iters=200)

    def cost(y):
        return float((x - y).norm(dim=1).sum())

    assert cost(m) <= cost(x.mean(0))
    for delta in torch.eye(3) * 1e-2:
        assert cost(m) <= cost(m + delta) + 1e-6 and cost(m) <= cost(m - delta) + 1e-6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(k=0), "--k must be between 1 and d_sae=64, got 0"),
        (dict(k=65), "--k must be between 1 and d_sae=64"),
        (dict(steps=0), "--steps must be ≥ 1"),
        (dict(batch_size=-1), "--batch-size must be ≥ 1"),
        (dict(lr=-1.0), "--lr must be a positive number"),
        (dict(wandb_mode="cloud"), "unknown --wandb mode 'cloud'"),
        (dict(hook="hook_x"), "unknown hook 'hook_x'"),
    ],
)
def test_bad_arguments_write_nothing(tiny_models, tiny_text_file, tmp_path, kwargs, message):
    out = tmp_path / "never"
    args = dict(
        model=str(tiny_models["gpt2"]), layer=1, data=str(tiny_text_file), d_sae=64, k=4, steps=5, out=out
    )
    with pytest.raises(InterplabError, match=message):
        train_sae(**{**args, **kwargs})
    assert not out.exists()


def test_training_forward_equals_the_saved_model(random_sae_weights):
    """The trainer's sparse decoder (embedding_bag) computes what the SAE module computes."""
    from interplab.sae.model import SAE, SAEConfig
    from interplab.sae.train import _topk_forward

    w = random_sae_weights(32, 64, seed=9)
    sae = SAE.from_weights(
        SAEConfig(d_in=32, d_sae=64, architecture="topk", k=6, apply_b_dec_to_input=True),
        **{k: v for k, v in w.items() if k != "threshold"},
    ).requires_grad_(False)
    x = torch.randn(25, 32, generator=torch.Generator().manual_seed(0))
    _pre, values, indices, x_hat = _topk_forward(sae, x, 6)
    f = torch.zeros(25, 64).scatter(-1, indices, values)
    torch.testing.assert_close(f, sae.encode(x))
    torch.testing.assert_close(x_hat, sae(x), rtol=1e-5, atol=1e-5)
