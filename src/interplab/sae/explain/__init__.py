"""Feature explanations without a large model: a built-in rule explainer, optional explainers behind
any OpenAI-compatible endpoint, and detection / fuzzing / embedding scores on held-out examples from
the activation database (``interplab sae explain``; see ``docs/sae-explain.md``)."""

from interplab.sae.explain.rules import Rule, TokenTable, learn_rule
from interplab.sae.explain.run import ExplainConfig, ExplainResult, explain

__all__ = ["ExplainConfig", "ExplainResult", "Rule", "TokenTable", "explain", "learn_rule"]
