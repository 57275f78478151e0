"""Every masks command's manifest lists exactly the files in its folder, relative to it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interplab.common.output import manifest_mismatches
from interplab.masks.multi_exec import multi_exec_analysis
from interplab.masks.multi_seed import multi_seed_analysis
from interplab.masks.prune import prune_model
from interplab.masks.report import comparative_report

SCHEMA = {"command", "argv", "arguments", "created", "seconds", "timings", "versions", "files"}


def _listed(manifest: Path) -> set[str]:
    data = json.loads(manifest.read_text())
    assert set(data) >= SCHEMA, manifest
    assert all(not Path(f).is_absolute() and ".." not in Path(f).parts for f in data["files"])
    return set(data["files"])


@pytest.mark.slow  # a tiny multi-seed run and a tiny pruning, ~15 s on a loaded machine
def test_folder_manifests_match_their_folders(
    save_matrix, random_mask, tiny_models, tiny_texts, tmp_path
) -> None:
    save_matrix(random_mask, rel="mats/wanda/layer1-mlp.down_proj.pt")
    ms = tmp_path / "ms"
    multi_seed_analysis(
        "wanda", 1, "mlp.down_proj", tmp_path / "mats", seeds=1, n_similar=8, k_values=[2],
        output_dir_path=ms, null_samples=0,
    )  # fmt: skip
    assert manifest_mismatches(ms) == ([], [])
    assert any(f.endswith(".pdf") for f in _listed(ms / "manifest.json"))
    texts = tmp_path / "texts.json"
    texts.write_text(json.dumps(tiny_texts))
    prune_model(
        tiny_models["llama"], out=tmp_path / "pruned", method="wanda", sparsity=0.5, data=texts,
        nsamples=4, seqlen=16, eval_samples=2, batch_size=4,
    )  # fmt: skip
    assert manifest_mismatches(tmp_path / "pruned" / "wanda") == ([], [])


def test_single_file_manifests_are_relative_and_complete(
    save_matrix, random_mask, tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = save_matrix(random_mask)
    res = Path("res")  # relative to the working directory, as users type it
    multi_exec_analysis(
        path, n_executions=2, n_features=8, n_clusters=2, null_samples=0, output_json=res / "w.json"
    )
    listed = _listed(res / "w.manifest.json")
    assert listed == {"w.json", "w.md", "w.html", "w_hamming_distribution.png", "w_hamming_distribution.pdf"}
    comparative_report(res, Path("report"))
    listed = _listed(Path("report") / "comparative_report.manifest.json")
    assert listed == {"comparative_report.md", "comparative_report.html", "comparative_report.csv"}
    assert {p.name for p in Path("report").iterdir()} == listed | {"comparative_report.manifest.json"}
