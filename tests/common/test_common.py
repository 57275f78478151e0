"""Tests of the shared helpers: atomic writes, JSON conversion, corpora, config, models, CLI errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from interplab.common.atomic import atomic_path, save_npz, save_sparse, to_jsonable, write_json, write_jsonl
from interplab.common.config import load_config
from interplab.common.data import docs_corpus, load_texts
from interplab.common.errors import InterplabError
from interplab.common.figures import new_figure, save_figure
from interplab.common.models import find_blocks, load_model, resolve_model
from interplab.common.output import output_dir


def test_atomic_write_keeps_old_file_on_error(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_write_json_handles_numpy_and_nan(tmp_path: Path) -> None:
    path = write_json(tmp_path / "x.json", {"a": np.float32(1.5), "b": np.arange(3), "c": math.nan})
    assert json.loads(path.read_text()) == {"a": 1.5, "b": [0, 1, 2], "c": None}


def test_write_jsonl_lines_equal_the_converted_rows(tmp_path: Path) -> None:
    """Plain rows are dumped directly; rows with numpy values or non-finite floats are converted
    first: every line equals json.dumps of to_jsonable(row)."""
    rows = [
        {"a": 1, "b": [0.5, "x", None], "c": {"d": True}},
        {"nan": math.nan, "inf": [math.inf], "np": np.float32(0.25), "arr": np.arange(3)},
        {"i": np.int64(7), "nested": [{"v": -math.inf}], 3: "int key"},
    ]
    write_jsonl(tmp_path / "r.jsonl", rows)
    lines = (tmp_path / "r.jsonl").read_text(encoding="utf-8").splitlines()
    assert lines == [json.dumps(to_jsonable(r), ensure_ascii=False) for r in rows]
    assert json.loads(lines[1]) == {"nan": None, "inf": [None], "np": 0.25, "arr": [0, 1, 2]}


def test_save_npz_and_save_sparse_read_back_with_numpy_and_scipy(tmp_path: Path) -> None:
    import scipy.sparse as sp

    arrays = {"a.b": np.arange(7, dtype=np.int32), "v": np.linspace(0, 1, 5), "key": np.array('{"x": 1}')}
    save_npz(tmp_path / "p.npz", arrays)
    with np.load(tmp_path / "p.npz", allow_pickle=False) as z:
        assert sorted(z.files) == sorted(arrays)
        for name, value in arrays.items():
            np.testing.assert_array_equal(z[name], value)
            assert z[name].dtype == value.dtype
    m = sp.random_array((30, 20), density=0.2, format="csr", dtype=np.float32, rng=0)
    save_sparse(tmp_path / "m.npz", m)
    back = sp.load_npz(tmp_path / "m.npz")
    assert back.format == "csr" and back.dtype == np.float32
    np.testing.assert_array_equal(back.toarray(), m.toarray())
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_output_dir_manifest_lists_files(tmp_path: Path) -> None:
    with output_dir(tmp_path / "out", "test", {"k": 1}) as out:
        write_json(out.file("sub/r.json"), {"x": 1})
        with out.timed("step"):
            pass
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["files"] == ["sub/r.json"]
    assert manifest["arguments"] == {"k": 1}
    assert "step" in manifest["timings"] and manifest["versions"]["numpy"] == np.__version__


def test_save_figure_writes_png_and_pdf(tmp_path: Path) -> None:
    fig, ax = new_figure()
    ax.plot([0, 1], [1, 0])
    written = save_figure(fig, tmp_path / "f.png")
    assert [p.name for p in written] == ["f.png", "f.pdf"]
    assert written[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert written[1].read_bytes()[:5] == b"%PDF-"


def test_docs_corpus_is_deterministic_and_large() -> None:
    a = docs_corpus(max_texts=200)
    b = docs_corpus(max_texts=200)
    assert a == b and len(a) == 200
    assert all(len(t) >= 40 for t in a)
    # ~4 characters a token: 4.5M characters is comfortably over 1M tokens
    big = docs_corpus(max_chars=4_500_000)
    assert sum(map(len, big)) >= 4_500_000


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("d.json", json.dumps(["a", "", "b"]), ["a", "", "b"]),
        ("d.jsonl", '{"text": "a"}\n\n{"text": "b c"}\n', ["a", "b c"]),
        ("d.txt", "one\n\ntwo words\n", ["one", "two words"]),
    ],
)
def test_load_texts_formats(tmp_path: Path, name: str, content: str, expected: list[str]) -> None:
    (tmp_path / name).write_text(content)
    assert load_texts(tmp_path / name) == expected


def test_load_texts_parquet(tmp_path: Path) -> None:
    import pandas as pd

    pd.DataFrame({"text": ["x", "y"], "other": [1, 2]}).to_parquet(tmp_path / "d.parquet")
    assert load_texts(tmp_path / "d.parquet") == ["x", "y"]
    pd.DataFrame({"body": ["x"]}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(InterplabError, match="no 'text' column"):
        load_texts(tmp_path / "bad.parquet")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.json", '["a",\n  "b"', "line 2"),
        ("bad.json", '{"a": 1}', "expected a JSON list"),
        ("bad.json", '["a", 3]', "item 1 is int"),
        ("bad.jsonl", '{"text": "a"}\n{"txt": "b"}\n', "line 2 has no string field 'text'"),
        ("bad.csv", "a,b", "unsupported data format"),
    ],
)
def test_load_texts_errors(tmp_path: Path, name: str, content: str, message: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(InterplabError, match=message):
        load_texts(tmp_path / name)
    with pytest.raises(InterplabError, match="not found"):
        load_texts(tmp_path / "missing.json")


def test_config_file_toml_and_json(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text("[masks.hamming]\nn-features = 64\n")
    assert load_config(tmp_path / "c.toml") == {"masks": {"hamming": {"n_features": 64}}}
    (tmp_path / "c.json").write_text('{"sae": {"quick": {"batch-size": 4}}}')
    assert load_config(tmp_path / "c.json") == {"sae": {"quick": {"batch_size": 4}}}
    (tmp_path / "bad.toml").write_text("[masks\n")
    with pytest.raises(InterplabError, match="malformed config"):
        load_config(tmp_path / "bad.toml")


def test_load_tiny_models_and_blocks(tiny_models: dict[str, Path]) -> None:
    expected = {
        "gpt2": "transformer.h",
        "llama": "model.layers",
        "qwen": "model.layers",
        "bert": "encoder.layer",
    }
    for name, folder in tiny_models.items():
        loaded = load_model(folder)
        assert loaded.is_causal == (name != "bert")
        path, blocks = find_blocks(loaded.model)
        assert path == expected[name] and len(blocks) == 2
        assert loaded.tokenizer.pad_token is not None


def test_resolve_model_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InterplabError, match="not a model folder"):
        resolve_model(tmp_path / "empty")
    with pytest.raises(InterplabError, match="not found"):
        resolve_model("./nope/model")
    assert Path(resolve_model("minilm")[0], "config.json").exists()


def test_cli_version_and_one_line_error(tmp_path: Path) -> None:
    exe = [sys.executable, "-m", "interplab"]
    out = subprocess.run([*exe, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("interplab ")
    bad = tmp_path / "bad.toml"
    bad.write_text("[x\n")
    res = subprocess.run([*exe, "--config", str(bad), "masks", "--help"], capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.strip().startswith("error:") and len(res.stderr.strip().splitlines()) == 1
