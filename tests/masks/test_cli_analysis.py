"""The analysis commands through the real CLI: output, files and one-line errors with exit code 2."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from interplab.cli import app, main
from interplab.masks.cli import parse_k_values


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """Run ``interplab ARGS`` in-process through ``main`` (as the console script does)."""
    monkeypatch.setattr(sys, "argv", ["interplab", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    return int(exc.value.code or 0), capsys.readouterr().err


def test_hamming_and_multi_exec_commands(save_matrix, random_mask, tmp_path) -> None:
    path = save_matrix(random_mask)
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "masks",
            "hamming",
            str(path),
            "--feature-idx",
            "3",
            "--n-features",
            "6",
            "--n-clusters",
            "2",
            "--null-samples",
            "2",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "Hamming distances to feature 3" in res.output and "separation ratio" in res.output
    brute = (random_mask != random_mask[3]).sum(axis=1)
    second = next(i for i in np.lexsort((np.arange(48), brute)) if i != 3)
    assert f"{brute[second] / 96:.4f}" in res.output
    out = tmp_path / "r" / "m.json"
    res = runner.invoke(
        app,
        [
            "masks",
            "multi-exec",
            str(path),
            "--n-executions",
            "2",
            "--n-features",
            "6",
            "--n-clusters",
            "2",
            "--null-samples",
            "0",
            "--output-json",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert len(json.loads(out.read_text())["executions"]) == 2
    assert "2 executions" in res.output
    res = runner.invoke(app, ["masks", "report", "--results-dir", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r" / "comparative_report.csv").exists()


def test_multi_seed_command_space_separated_k_values(save_matrix, random_mask, tmp_path) -> None:
    save_matrix(random_mask, rel="mats/wanda/layer1-mlp.down_proj.pt")
    res = CliRunner().invoke(
        app,
        [
            "masks",
            "multi-seed",
            "--method",
            "wanda",
            "--layer",
            "1",
            "--component",
            "mlp.down_proj",
            "--matrix-dir",
            str(tmp_path / "mats"),
            "--seeds",
            "1",
            "--n-similar",
            "8",
            "--k-values",
            "2",
            "3",
            "--null-samples",
            "0",
            "--output-dir",
            str(tmp_path / "ms"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "k=2:" in res.output and "k=3:" in res.output
    assert sorted(p.name for p in (tmp_path / "ms" / "seed_0").iterdir()) == ["k_2", "k_3"]


def test_parse_k_values() -> None:
    assert parse_k_values(["4"], ["8", "16"]) == [4, 8, 16]
    assert parse_k_values(["4,8"], []) == [4, 8]


def test_errors_are_one_line_exit_2_and_write_nothing(
    save_matrix, random_mask, tmp_path, monkeypatch, capsys
) -> None:
    good = str(save_matrix(random_mask))
    torch.save(torch.ones(4, 4), tmp_path / "dense.pt")
    torch.save(torch.ones(2, 2, 2), tmp_path / "cube.pt")
    out = tmp_path / "out"
    cases = [
        (
            ["masks", "hamming", str(tmp_path / "missing.pt"), "--output-json", str(out / "a.json")],
            "not found",
        ),
        (["masks", "hamming", str(tmp_path / "cube.pt")], "expected a 2-D matrix"),
        (["masks", "hamming", str(tmp_path / "dense.pt")], "no zeros"),
        (
            ["masks", "multi-exec", good, "--n-features", "500", "--output-json", str(out / "b.json")],
            "more than",
        ),
        (
            ["masks", "multi-exec", good, "--n-features", "4", "--n-clusters", "5"],
            "fewer than the 5 clusters",
        ),
        (["masks", "hamming", good, "--n-clusters", "1", "--output-json", str(out / "c.json")], "at least 2"),
        (
            [
                "masks",
                "multi-seed",
                "--method",
                "nope",
                "--component",
                "mlp.down_proj",
                "--matrix-dir",
                str(tmp_path / "m"),
                "--output-dir",
                str(out / "ms"),
            ],
            "unknown method 'nope'.*wanda",
        ),
        (
            [
                "masks",
                "multi-seed",
                "--method",
                "wanda",
                "--component",
                "mlp.down_proj",
                "--matrix-dir",
                str(tmp_path / "m"),
                "--k-values",
                "2",
                "x",
                "--output-dir",
                str(out / "ms"),
            ],
            "--k-values expects integers",
        ),
        (["masks", "report", "--results-dir", str(tmp_path / "nowhere")], "results folder not found"),
    ]
    for args, message in cases:
        code, err = run_main(monkeypatch, capsys, *args)
        assert code == 2, (args, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert __import__("re").search(message, lines[0]), lines[0]
    assert not out.exists()
