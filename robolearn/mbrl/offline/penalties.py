"""Reward penalties of offline model-based RL: ensemble disagreement turned into pessimism.

- MOPO (Yu et al., NeurIPS 2020, section 4.3 and eq. 7; the authors' code, tianheyu927/mopo,
  mopo/models/fake_env.py with ``penalty_learned_var=True``): u(s, a) = max over members i of
  ||sigma_i(s, a)||_2, the norm of member i's predicted standard deviation over every output (next-state
  delta and reward), in raw units. The paper writes it as the Frobenius norm of the covariance; the
  authors' experiments (and OfflineRL-Kit) use the norm of the std vector, and so do we. The reward is
  r - lambda * u, applied when the model transition is generated.
- MOBILE (Sun et al., ICML 2023, section 4, eq. 6-8; the authors' code, yihaosun1124/mobile,
  policies/mobile.py ``compute_lcb``): u(s, a) = std over elite members i of the Bellman targets
  mean_k Q(s'_ik, a'_ik) with s'_ik the k-th sample of member i and a'_ik ~ pi(s'_ik), Q the minimum of
  the target critics. The reward in the critic's target is r - beta * u, for model transitions only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Tensor = torch.Tensor

__all__ = ["mobile_penalty", "mobile_penalty_from_q", "mopo_penalty"]


def mopo_penalty(member_std: Tensor) -> Tensor:
    """MOPO's max-aleatoric penalty: max_i ||std_i||_2 over members, from stds [M, B, out] -> [B]."""
    return torch.linalg.vector_norm(member_std, dim=-1).amax(dim=0)


def mobile_penalty_from_q(q: Tensor) -> Tensor:
    """MOBILE's Bellman inconsistency from target values q [S, M, B] (samples, members, batch) -> [B].

    The mean over each member's samples, then the standard deviation across members (unbiased, as
    torch.std in the authors' code)."""
    return q.mean(dim=0).std(dim=0, unbiased=True)


def mobile_penalty(
    next_obs: Tensor,
    target_value: Callable[[Tensor], Tensor],
) -> Tensor:
    """MOBILE's penalty from sampled next states next_obs [S, M, B, o]: target_value maps states [N, o] to
    min_j Q_target_j(s', a' ~ pi(s')) [N]; returns [B]."""
    s, m, b, o = next_obs.shape
    q = target_value(next_obs.reshape(-1, o)).reshape(s, m, b)
    return mobile_penalty_from_q(q)
