"""One name per matrix role across model families, so ``--component mlp.down_proj`` finds MiniLM's
``output.dense`` or GPT-2's ``mlp.c_proj`` when no matrix of that exact name exists.

Each role lists its Llama/Qwen name, the TransformerLens name and the BERT and GPT-2 module names.
"""

from __future__ import annotations

ROLES: tuple[tuple[str, ...], ...] = (
    ("mlp.down_proj", "mlp.W_out", "W_out", "output.dense", "mlp.c_proj"),
    ("mlp.up_proj", "mlp.W_in", "W_in", "intermediate.dense", "mlp.c_fc"),
    ("mlp.gate_proj", "mlp.W_gate", "W_gate"),
    ("self_attn.o_proj", "attn.W_O", "W_O", "attention.output.dense", "attn.c_proj"),
    ("self_attn.q_proj", "attn.W_Q", "W_Q", "attention.self.query"),
    ("self_attn.k_proj", "attn.W_K", "W_K", "attention.self.key"),
    ("self_attn.v_proj", "attn.W_V", "W_V", "attention.self.value"),
)


def component_aliases(component: str) -> list[str]:
    """Other names of the same matrix role as ``component`` (empty when it has none)."""
    for names in ROLES:
        if component in names:
            return [n for n in names if n != component]
    return []
