"""Gemma Scope SAEs: one ``params.npz`` per layer / width / L0.

The suites (``gemma-scope-2b-pt-res``, ``…-mlp``, ``…-att``) store each SAE at
``layer_<L>/width_<W>/average_l0_<N>/params.npz`` with ``W_enc [d_in, d_sae]``, ``b_enc``,
``W_dec [d_sae, d_in]``, ``b_dec`` and a per-feature ``threshold``. The documented formula is a
JumpReLU on raw activations (no ``b_dec`` subtracted from the input)::

    pre = x W_enc + b_enc;  f = ReLU(pre) · [pre > threshold];  x̂ = f W_dec + b_dec

The hook comes from the path: the layer from ``layer_<L>`` and the kind from the suite name
(``res`` → ``hook_resid_post``, ``mlp`` → ``hook_mlp_out``, ``att`` → ``attn.hook_z``, the
concatenated per-head outputs before the output projection). Where the path gives no kind (or no
layer) the SAE has no ``hook_name`` and ``--hook`` must say it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interplab.common.errors import InterplabError
from interplab.sae.model import SAE, SAEConfig

PARAMS = "params.npz"
ARRAYS = ("W_enc", "W_dec", "b_enc", "b_dec", "threshold")
KIND_HOOKS = {"res": "hook_resid_post", "mlp": "hook_mlp_out", "att": "attn.hook_z"}


def _params_file(path: Path) -> Path:
    return path if path.name == PARAMS else path / PARAMS


def detect(path: Path) -> bool:
    """A ``params.npz`` file, or a folder holding one."""
    return _params_file(Path(path)).is_file()


def hook_from_path(path: Path) -> tuple[str | None, int | None, str]:
    """``(hook_name, layer, how)`` from a Gemma Scope path; ``how`` says what the path gave."""
    text = str(Path(path).resolve().as_posix())
    m = re.search(r"(?:^|/)layer_(\d+)(?:/|$)", text)
    layer = int(m.group(1)) if m else None
    kind_m = re.search(r"gemma-scope-[\w.-]*?-(res|mlp|att)(?:-canonical)?(?:/|$)", text)
    kind = kind_m.group(1) if kind_m else None
    if layer is None:
        return None, None, "the path names no layer (layer_<L>/…)"
    if kind is None:
        return None, layer, f"the path gives layer {layer} but no suite kind (…-res / -mlp / -att)"
    return f"blocks.{layer}.{KIND_HOOKS[kind]}", layer, f"from the path (layer_{layer}, suite kind '{kind}')"


def load(path: Path, dtype: torch.dtype = torch.float32, device: Any = "cpu") -> SAE:
    """Load a Gemma Scope ``params.npz`` (a file or its folder) as a JumpReLU SAE."""
    file = _params_file(Path(path))
    try:
        with np.load(file, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as exc:
        raise InterplabError(f"{file}: not a readable .npz file ({exc})") from exc
    missing = [k for k in ARRAYS if k not in arrays]
    if missing:
        raise InterplabError(
            f"{file}: Gemma Scope params.npz needs {', '.join(ARRAYS)}; missing {', '.join(missing)} "
            f"(found: {', '.join(sorted(arrays)) or 'nothing'})"
        )
    w = {k: torch.from_numpy(np.asarray(arrays[k], dtype=np.float32)) for k in ARRAYS}
    if w["W_enc"].dim() != 2:
        raise InterplabError(f"{file}: W_enc has shape {list(w['W_enc'].shape)}, expected [d_in, d_sae]")
    d_in, d_sae = (int(n) for n in w["W_enc"].shape)
    hook_name, layer, how = hook_from_path(file.parent)
    cfg = SAEConfig(
        d_in=d_in,
        d_sae=d_sae,
        architecture="jumprelu",
        apply_b_dec_to_input=False,
        hook_name=hook_name,
        hook_layer=layer,
        source_format="gemmascope",
        extra={"hook_source": how},
    )
    sae = SAE.from_weights(cfg, dtype=dtype, device=device, **w)
    sae.eval()
    return sae.requires_grad_(False)
