"""The sae area of interplab: load SAEs in any common format, hook models, check and analyse SAEs.

Names are imported lazily so ``import interplab.sae`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SAE": "interplab.sae.model",
    "SAEConfig": "interplab.sae.model",
    "load_sae": "interplab.sae.formats",
    "save_sae": "interplab.sae.formats",
    "quick_check": "interplab.sae.quick",
    "train_sae": "interplab.sae.train",
    "SAEAnalyzer": "interplab.sae.analyzer",
    "run_comprehensive_analysis": "interplab.sae.analyzer",
    "run_analysis": "interplab.sae.analyzer",
    "AnalysisConfig": "interplab.sae.configs",
    "TrainConfig": "interplab.sae.configs",
    "run_sae_demo": "interplab.sae.analyzer",
    "ActivationDatabase": "interplab.sae.activation_db",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'interplab.sae' has no attribute {name!r}")
