"""In-context Markov chains: sequences from per-sequence random transition matrices, and the
in-context n-gram estimators the model is compared against.

Every sequence has its own transition matrix whose rows are drawn from a symmetric Dirichlet(α)
over ``n_states`` states; the first state is drawn from the chain's stationary distribution. A
model that predicts well must therefore learn *in context* (from the sequence so far).

The k-token-context estimator at position ``t`` (predicting ``x[t+1]`` from ``x[0..t]``) is the
add-one (Laplace) smoothed count of what followed the last ``k-1`` tokens earlier in the sequence:

* k = 1 (unigram):  p(s) = (#{i ≤ t : x_i = s} + 1) / (t + 1 + n)
* k = 2 (bigram):   p(s) = (#{1 ≤ i ≤ t : x_{i-1} = x_t, x_i = s} + 1) / (#{…x_{i-1} = x_t} + n)
* k = 3 (trigram):  the same with the context pair (x_{t-1}, x_t).

All estimators are vectorised with one-hot cumulative sums (no loop over tokens).
"""

from __future__ import annotations

import numpy as np
import torch


def stationary(trans: torch.Tensor) -> torch.Tensor:
    """Stationary distributions of a batch of transition matrices ``[B, n, n]`` → ``[B, n]``."""
    n = trans.shape[-1]
    # Power iteration on a lazy chain converges for every irreducible chain (Dirichlet rows are a.s. >0).
    p = torch.full(trans.shape[:-1], 1.0 / n, dtype=trans.dtype)
    lazy = 0.5 * (trans + torch.eye(n, dtype=trans.dtype))
    for _ in range(64):
        p = torch.einsum("bi,bij->bj", p, lazy)
    return p / p.sum(-1, keepdim=True)


def sample_markov(
    batch: int,
    seq_len: int,
    n_states: int,
    alpha: float = 1.0,
    rng: np.random.Generator | None = None,
) -> torch.Tensor:
    """``batch`` sequences of length ``seq_len``, each from its own Dirichlet(α) transition matrix.

    Returns a ``LongTensor [batch, seq_len]``. The loop runs over time steps only; each step samples
    the whole batch at once by inverting the cumulative transition row with one uniform draw.
    """
    rng = rng if rng is not None else np.random.default_rng()
    trans = rng.dirichlet(np.full(n_states, float(alpha)), size=(batch, n_states))  # [B, n, n]
    first = stationary(torch.from_numpy(trans)).numpy()
    cdf = np.cumsum(trans, axis=-1)
    u = rng.random((batch, seq_len))
    x = np.empty((batch, seq_len), dtype=np.int64)
    x[:, 0] = np.minimum((np.cumsum(first, -1) < u[:, :1]).sum(-1), n_states - 1)
    rows = np.arange(batch)
    for t in range(1, seq_len):
        x[:, t] = np.minimum((cdf[rows, x[:, t - 1]] < u[:, t : t + 1]).sum(-1), n_states - 1)
    return torch.from_numpy(x)


def ngram_estimator(x: torch.Tensor, k: int, n_states: int, smoothing: float = 1.0) -> torch.Tensor:
    """In-context ``k``-token-context estimator: ``[B, T] → [B, T, n]`` next-token probabilities.

    Row ``t`` predicts ``x[t+1]`` from ``x[0..t]``: smoothed counts of the states that followed earlier
    occurrences of the last ``k-1`` tokens ``x[t-k+2..t]`` (for ``k = 1`` simply the state counts).
    Positions with fewer than ``k-1`` tokens of context use the unconditioned counts of what is there
    (for ``t < k-2`` the context is shortened to what exists).
    """
    if k < 1:
        raise ValueError("k must be ≥ 1")
    B, T = x.shape
    n = n_states
    if k == 1:
        counts = torch.nn.functional.one_hot(x, n).to(torch.float64).cumsum(1)
        return (counts + smoothing) / (counts.sum(-1, keepdim=True) + smoothing * n)
    # Code each (k)-gram ending at position i (i ≥ k-1) as ctx * n + next, ctx the base-n code of the k-1
    # tokens before it. cumsum over positions gives the counts seen up to t.
    m = k - 1
    codes = torch.zeros(B, T - m, dtype=torch.long)
    for j in range(k):  # loop over the k offsets of the n-gram, not over tokens
        codes = codes * n + x[:, j : T - m + j]
    onehot = torch.nn.functional.one_hot(codes, n**k).to(torch.float64)
    cum = torch.zeros(B, T, n**k, dtype=torch.float64)
    cum[:, m:] = onehot.cumsum(1)  # cum[:, t] = counts of k-grams ending at or before t
    cum = cum.view(B, T, n**m, n)
    # Context code of the last m tokens at each position t ≥ m-1.
    ctx = torch.zeros(B, T, dtype=torch.long)
    for j in range(m):
        shifted = torch.zeros(B, T, dtype=torch.long)
        shifted[:, m - 1 - j :] = x[:, : T - (m - 1 - j)]
        ctx = ctx * n + shifted
    idx = ctx.view(B, T, 1, 1).expand(B, T, 1, n)
    counts = cum.gather(2, idx).squeeze(2)
    probs = (counts + smoothing) / (counts.sum(-1, keepdim=True) + smoothing * n)
    if m > 1:  # too little context for the full k-1 tokens: fall back to the shorter estimator
        # the estimator at t only depends on x[0..t], so the prefix is enough
        probs[:, : m - 1] = ngram_estimator(x[:, : m - 1], k - 1, n, smoothing)
    return probs


def kl_to_model(p_est: torch.Tensor, model_logp: torch.Tensor) -> torch.Tensor:
    """Mean KL(p_est ‖ p_model) over all positions: Σ_s p_est(s) (log p_est(s) − log p_model(s))."""
    p = p_est.to(model_logp.dtype)
    return (p * (p.clamp_min(1e-30).log() - model_logp)).sum(-1).mean()
