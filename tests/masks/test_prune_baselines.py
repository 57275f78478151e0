"""The reference-paper baselines of ``masks prune``: OWL layerwise sparsity (hand-worked formula and
outlier ratios from plain forward hooks), SparseGPT's reference count (against a straightforward
reimplementation of the reference rule), the per-matrix magnitude baseline, and the O(in) input
statistics of Wanda/magnitude with their output errors measured directly."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from interplab.common.errors import InterplabError
from interplab.common.models import find_blocks, load_model
from interplab.masks.blockwise import prune_blocks
from interplab.masks.layers import GramStats, NormStats, collect_input_stats, find_linear_layers
from interplab.masks.owl import outlier_ratio, owl_sparsities
from interplab.masks.prune import prune_model
from interplab.masks.selection import Structure
from interplab.masks.sparsegpt import sparsegpt_prune
from interplab.masks.wanda import magnitude_prune

SMALL = {"nsamples": 8, "seqlen": 16, "eval_samples": 2, "batch_size": 4}


def test_owl_sparsities_hand_worked() -> None:
    # ratios 1 %, 3 %, 2 %, 5 %: normalised (0, .5, .25, 1) × 2λ = (0, .08, .04, .16), mean .07,
    # density = k − .07 + .5 = (.43, .51, .47, .59), sparsity = (.57, .49, .53, .41)
    got = owl_sparsities([0.01, 0.03, 0.02, 0.05], target=0.5, lam=0.08)
    assert got == pytest.approx([0.57, 0.49, 0.53, 0.41])
    assert np.mean(got) == pytest.approx(0.5)
    assert owl_sparsities([0.02, 0.02, 0.02], target=0.6, lam=0.08) == pytest.approx([0.6] * 3)
    # target .9, λ .2: k = (0, .2, .1, .4), mean .175, density(0) = −.075 → sparsity 1.075
    with pytest.raises(InterplabError, match=r"--owl-lambda 0.2: gives layer 0 sparsity 1.0750"):
        owl_sparsities([0.01, 0.03, 0.02, 0.05], target=0.9, lam=0.2)


def test_outlier_ratio_hand_worked() -> None:
    scores = [torch.ones(3, 3), torch.tensor([20.0])]  # mean 2.9; 5 × mean = 14.5; one above
    assert outlier_ratio(scores, 5.0) == pytest.approx(0.1)
    assert outlier_ratio(scores, 10.0) == 0.0


@pytest.fixture(scope="module")
def texts_file(tmp_path_factory: pytest.TempPathFactory, tiny_texts: list[str]) -> Path:
    path = tmp_path_factory.mktemp("baselines") / "texts.json"
    path.write_text(json.dumps(tiny_texts), encoding="utf-8")
    return path


def _hook_outlier_ratios(model: torch.nn.Module, calibration: torch.Tensor, m: float) -> list[float]:
    """Outlier ratio of each block from a plain forward pass of the unpruned model with hooks."""
    _, blocks = find_blocks(model)
    sums: dict[tuple[int, str], torch.Tensor] = {}
    handles = []
    for i, block in enumerate(blocks):
        for name, module in block.named_modules():
            if isinstance(module, torch.nn.Linear):

                def hook(_m, args, _o, key=(i, name)):  # type: ignore[no-untyped-def]
                    x = args[0].reshape(-1, args[0].shape[-1]).double()
                    sums[key] = sums.get(key, 0) + (x * x).sum(0)

                handles.append(module.register_forward_hook(hook))
    with torch.no_grad():
        model(input_ids=calibration, attention_mask=torch.ones_like(calibration))
    for h in handles:
        h.remove()
    ratios = []
    for i, block in enumerate(blocks):
        flat = torch.cat(
            [
                (module.weight.double().abs() * sums[(i, name)].sqrt()).flatten()
                for name, module in block.named_modules()
                if isinstance(module, torch.nn.Linear)
            ]
        )
        ratios.append(float((flat > flat.mean() * m).sum()) / flat.numel())
    return ratios


def test_owl_profile_end_to_end(tiny_models: dict[str, Path], texts_file: Path, tmp_path: Path) -> None:
    from interplab.masks.calibration import build_calibration

    result = prune_model(
        tiny_models["llama"], out=tmp_path, method="wanda", sparsity=0.5, data=texts_file,
        sparsity_profile="owl", owl_lambda=0.1, owl_m=2.0, **SMALL,
    )  # fmt: skip
    profile = result.report["sparsity_profile"]
    assert profile["profile"] == "owl" and profile["lambda"] == 0.1 and profile["m"] == 2.0
    layers = profile["layers"]
    loaded = load_model(tiny_models["llama"])
    calib = build_calibration(
        loaded.tokenizer, texts_file, nsamples=8, seqlen=16, seed=0, n_eval=2, encoder=False
    )
    expected_ratios = _hook_outlier_ratios(loaded.model, calib.calibration, 2.0)
    assert [entry["outlier_ratio"] for entry in layers] == pytest.approx(expected_ratios, abs=1e-6)
    expected = owl_sparsities(expected_ratios, 0.5, 0.1)
    assert [entry["sparsity"] for entry in layers] == pytest.approx(expected)
    assert np.mean([entry["sparsity"] for entry in layers]) == pytest.approx(0.5)
    for matrix in result.report["matrices"]:
        cols = matrix["shape"][1]
        target = layers[matrix["layer"]]["sparsity"]
        assert matrix["sparsity"] == pytest.approx(math.floor(cols * target + 1e-9) / cols)
    assert result.report["quality"]["context_length"] == 16


def test_owl_bad_lambda_writes_nothing(
    tiny_models: dict[str, Path], texts_file: Path, tmp_path: Path
) -> None:
    with pytest.raises(InterplabError, match=r"--owl-lambda 0\.6: gives layer"):
        prune_model(
            tiny_models["llama"], out=tmp_path / "o", method="wanda", sparsity=0.5, data=texts_file,
            sparsity_profile="owl", owl_lambda=0.6, owl_m=2.0, **SMALL,
        )  # fmt: skip
    assert not (tmp_path / "o").exists()
    with pytest.raises(InterplabError, match="needs unstructured"):
        prune_model(
            tiny_models["llama"], out=tmp_path / "o", structure="2:4", data=texts_file,
            sparsity_profile="owl", **SMALL,
        )  # fmt: skip


def reference_rule_sparsegpt(w: torch.Tensor, h: torch.Tensor, sparsity: float) -> torch.Tensor:
    """SparseGPT's unstructured step written out plainly: 128-column blocks, mask = saliency <= the
    k-th smallest of the block (k = int(numel·s)), per-column OBS update inside, lazy update after."""
    w = w.clone().float()
    h = h.clone().float()
    cols = w.shape[1]
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    damp = 0.01 * torch.mean(torch.diag(h))
    h = h + damp * torch.eye(cols)
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    for i1 in range(0, cols, 128):
        i2 = min(i1 + 128, cols)
        w1 = w[:, i1:i2].clone()
        q1 = torch.zeros_like(w1)
        err1 = torch.zeros_like(w1)
        hinv1 = hinv[i1:i2, i1:i2]
        tmp = w1**2 / torch.diag(hinv1).reshape(1, -1) ** 2
        thresh = torch.sort(tmp.flatten())[0][int(tmp.numel() * sparsity)]
        mask1 = tmp <= thresh
        for i in range(i2 - i1):
            col = w1[:, i]
            d = hinv1[i, i]
            q = col.clone()
            q[mask1[:, i]] = 0
            q1[:, i] = q
            e = (col - q) / d
            w1[:, i:] -= e.unsqueeze(1).matmul(hinv1[i, i:].unsqueeze(0))
            err1[:, i] = e
        w[:, i1:i2] = q1
        w[:, i2:] -= err1.matmul(hinv[i1:i2, i2:])
    return w


def test_sparsegpt_reference_count_matches_reference_rule() -> None:
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(6, 160, generator=gen)
    x = torch.randn(160, 400, generator=gen)
    x[7] = 0  # a dead input
    h = 2 * x @ x.T / 400
    ours = sparsegpt_prune(w, h, 0.5, Structure(), reference_count=True)
    ref = reference_rule_sparsegpt(w, h, 0.5)
    assert torch.allclose(ours, ref, atol=1e-5, rtol=1e-4)
    assert torch.equal(ours == 0, ref == 0)
    exact = sparsegpt_prune(w, h, 0.5, Structure())
    for i1, width in ((0, 128), (128, 32)):
        k = int(6 * width * 0.5)
        assert int((exact[:, i1 : i1 + width] == 0).sum()) == k
        assert int((ours[:, i1 : i1 + width] == 0).sum()) >= k + 1


def test_magnitude_matrix_scope_is_the_published_threshold() -> None:
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(7, 12, generator=gen)
    w[0, :4] = 0.25  # ties
    w[3, 2] = -0.25
    pruned = magnitude_prune(w, 0.4, Structure(), scope="matrix")
    values = np.sort(np.abs(w.numpy()).ravel())
    thresh = values[int(w.numel() * 0.4)]
    expected = np.abs(w.numpy()) <= thresh
    assert np.array_equal(pruned.numpy() == 0, expected)
    rows = magnitude_prune(w, 0.4, Structure(), scope="row")
    assert ((rows == 0).sum(dim=1) == 4).all()


def test_norm_stats_are_the_gram_diagonal_in_o_in_memory() -> None:
    layer = torch.nn.Linear(24, 5)
    with collect_input_stats(find_linear_layers(torch.nn.Sequential(layer)), gram=False) as norms:
        x = torch.randn(3, 7, 24)
        layer(x)
    stats = next(iter(norms.values()))
    assert isinstance(stats, NormStats) and stats.sums.shape == (24,) and stats.tokens == 21
    gram = GramStats.empty(24)
    gram.add(x)
    assert torch.allclose(stats.sq_norms, gram.sq_norms, rtol=1e-5)


@pytest.mark.parametrize("method", ["wanda", "magnitude"])
def test_wanda_output_error_without_gram_matches_direct(tiny_models: dict[str, Path], method: str) -> None:
    loaded = load_model(tiny_models["llama"])
    original = copy.deepcopy(loaded.model)
    _, blocks = find_blocks(loaded.model)
    calibration = torch.randint(4, 64, (4, 16), generator=torch.Generator().manual_seed(0))
    saved: dict[str, torch.Tensor] = {}

    def keep(layer: int, component: str, pruned: torch.Tensor) -> None:
        saved[f"{layer}-{component}"] = pruned.clone()

    results = prune_blocks(
        loaded.model, blocks, calibration, method=method, sparsity=0.5, structure=Structure(), on_matrix=keep
    )
    _, orig_blocks = find_blocks(original)
    inputs: dict[str, list[torch.Tensor]] = {}
    handles = [
        module.register_forward_hook(
            lambda _m, args, _o, key=name: inputs.setdefault(key, []).append(
                args[0].reshape(-1, args[0].shape[-1])
            )
        )
        for name, module in orig_blocks[0].named_modules()
        if isinstance(module, torch.nn.Linear)
    ]
    with torch.no_grad():
        original(input_ids=calibration, attention_mask=torch.ones_like(calibration))
    for h in handles:
        h.remove()
    for r in results:
        if r.layer != 0:
            continue
        x = torch.cat(inputs[r.component]).double()
        w = dict(orig_blocks[0].named_modules())[r.component].weight.detach().double()
        delta = w - saved[f"0-{r.component}"].double()
        direct = float((x @ delta.T).norm() / (x @ w.T).norm())
        assert r.relative_output_error == pytest.approx(direct, rel=1e-4)


def test_prune_model_magnitude_matrix_scope_and_conventions(
    tiny_models: dict[str, Path], texts_file: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    result = prune_model(
        tiny_models["llama"], out=tmp_path, method="magnitude", sparsity=0.3, data=texts_file,
        magnitude_scope="matrix", **SMALL,
    )  # fmt: skip
    assert result.report["conventions"]["magnitude_scope"] == "matrix"
    state = load_file(str(tiny_models["llama"] / "model.safetensors"))
    for matrix in result.report["matrices"]:
        w = state[f"model.layers.{matrix['layer']}.{matrix['component']}.weight"].numpy()
        thresh = np.sort(np.abs(w).ravel())[int(w.size * 0.3)]
        saved = torch.load(tmp_path / "magnitude" / matrix["file"], weights_only=True).numpy()
        assert np.array_equal(saved == 0, np.abs(w) <= thresh), matrix["file"]
    with pytest.raises(InterplabError, match="--magnitude-scope"):
        prune_model(
            tiny_models["llama"], out=tmp_path / "x", data=texts_file, magnitude_scope="block", **SMALL
        )
    ref = prune_model(
        tiny_models["llama"], out=tmp_path, method="sparsegpt", data=texts_file, sparsegpt_reference_count=True,
        **SMALL,
    )  # fmt: skip
    assert ref.report["conventions"]["sparsegpt_count"].startswith("reference")
    for matrix in ref.report["matrices"]:  # at least one more than floor(rows·width·s) per block
        rows, cols = matrix["shape"]
        assert matrix["sparsity"] * rows * cols >= sum(
            int(rows * min(128, cols - i) * 0.5) + 1 for i in range(0, cols, 128)
        )
