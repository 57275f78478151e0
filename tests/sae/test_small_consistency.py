"""The ablation section's KL label matches what is measured; ``sae analyze`` has ``--no-ablation``."""

from __future__ import annotations

import subprocess
import sys

from interplab.sae.metrics import AblationStats


def test_kl_direction_names_the_substitute() -> None:
    assert AblationStats().result()["kl_direction"] == "KL(p_clean || p_ablated)"
    text = AblationStats(substitute="model has no LM head").result()["kl_direction"]
    assert "cos" in text and "not a KL" in text


def test_analyze_has_no_ablation_flag() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "interplab", "sae", "analyze", "--help"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0 and "--no-ablation" in res.stdout
