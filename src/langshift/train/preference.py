"""Pairwise preference losses, chosen by name (`--pref-loss`, `train.pref_loss`).

Each loss is a pure function of one side's preference pairs: per-sequence log-probs of the chosen (w)
and rejected (l) responses under the policy (and the reference, for the losses that have one), and the
responses' lengths |y| in tokens. log pi(y|x) is a sum over the response tokens, as everywhere in
langshift; the losses that want a per-token average divide by |y| themselves.

How CLO uses them. Every record gives two pairs that share the loss:
    English side  (Eq. 6/11): prompt x_en, chosen y_en, rejected y_t
    target side   (Eq. 7/12): prompt x_t,  chosen y_t,  rejected y_en
    L_CL = mean over records of [loss(English pair) + loss(target pair)]          (Eq. 5/10)
With `sigmoid` this is the paper's L_CL exactly (z_en, z_t of Eq. 6-7). The reference-free losses
(`simpo`, `orpo`) drop the pi_ref terms of Eq. 6-7: each side compares the policy's own (length-
normalised) log-probs of its two replies, so the run needs no reference pass and no reference cache.
`--method dpo` applies the same loss to its pairs, each its own example.

Implicit rewards (metrics.jsonl's `reward_chosen`, `reward_rejected`, `margin`, `accuracy`, the same
keys for every loss) are each loss's own, as TRL logs them: beta * (log pi - log ref) for the losses
with a reference (DPO's), beta * log pi / |y| (the mean per-token log-prob) for the reference-free ones
(SimPO's reward; TRL's ORPOTrainer logs the same quantity as its rewards).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor


class Pairs(NamedTuple):
    """One side's preference pairs (tensors of shape (n,)): policy and reference log-probs of the chosen
    and rejected responses (`ref_*` None for a reference-free loss) and the responses' token counts."""

    pi_w: Tensor
    pi_l: Tensor
    ref_w: Tensor | None
    ref_l: Tensor | None
    n_w: Tensor
    n_l: Tensor


def per_token(logp: Tensor, n_tok: Tensor) -> Tensor:
    """log pi(y|x) / |y|: the mean log-prob of a response's tokens (a response of 0 tokens counts as 1)."""
    return logp / n_tok.clamp(min=1)


def preference_logits(pi_w: Tensor, pi_l: Tensor, ref_w: Tensor, ref_l: Tensor, beta: float) -> Tensor:
    """z = beta * ((pi_w - ref_w) - (pi_l - ref_l))   (Eq. 2; Eq. 6-7 on CLO's two sides)."""
    return beta * ((pi_w - ref_w) - (pi_l - ref_l))


def sigmoid_loss(p: Pairs, beta: float, gamma: float) -> Tensor:
    """DPO (Rafailov et al. 2023, "Direct Preference Optimization", Eq. 7; the paper's Eq. 1-2):

        loss = -log sigma(z),   z = beta * [(log pi(y_w|x) - log ref(y_w|x)) - (log pi(y_l|x) - log ref(y_l|x))]

    On CLO's sides this is -log sigma(z_en) and -log sigma(z_t): the paper's L_CL. `gamma` is unused."""
    return -F.logsigmoid(preference_logits(p.pi_w, p.pi_l, p.ref_w, p.ref_l, beta))


def ipo_loss(p: Pairs, beta: float, gamma: float) -> Tensor:
    """IPO (Azar et al. 2023, "A General Theoretical Paradigm to Understand Learning from Human
    Preferences", Eq. 17, with tau = beta):

        h    = (log pi(y_w|x) - log ref(y_w|x)) / |y_w|  -  (log pi(y_l|x) - log ref(y_l|x)) / |y_l|
        loss = (h - 1 / (2 beta))^2                            [= (z/beta - 1/(2 beta))^2 per token]

    The log-ratios are averaged over each response's tokens, as TRL's DPOTrainer(loss_type="ipo") does
    (a choice its authors confirmed with IPO's): with summed log-ratios the squared target 1/(2 beta)
    would mean a different thing for every response length. `gamma` is unused."""
    h = per_token(p.pi_w - p.ref_w, p.n_w) - per_token(p.pi_l - p.ref_l, p.n_l)
    return (h - 1 / (2 * beta)) ** 2


def simpo_loss(p: Pairs, beta: float, gamma: float) -> Tensor:
    """SimPO (Meng et al. 2024, "SimPO: Simple Preference Optimization with a Reference-Free Reward",
    Eq. 6), reference-free:

        loss = -log sigma(beta * log pi(y_w|x) / |y_w|  -  beta * log pi(y_l|x) / |y_l|  -  gamma)

    gamma is the target reward margin (`simpo_gamma`); TRL's CPOTrainer(loss_type="simpo") computes the
    same. SimPO's paper tunes beta in 2-10 (langshift's default beta 0.1 is DPO's): set `beta` for it."""
    return -F.logsigmoid(beta * (per_token(p.pi_w, p.n_w) - per_token(p.pi_l, p.n_l)) - gamma)


def log1mexp(x: Tensor) -> Tensor:
    """log(1 - exp(x)) for x < 0, without cancellation (Maechler 2012: switch at -ln 2)."""
    x = x.clamp(max=-1e-7)  # a response the policy is certain of (x = 0) would give -inf: keep it finite
    return torch.where(x < -math.log(2), torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def orpo_loss(p: Pairs, beta: float, gamma: float) -> Tensor:
    """ORPO's odds-ratio term (Hong et al. 2024, "ORPO: Monolithic Preference Optimization without
    Reference Model", Eq. 4-7), reference-free, with lambda = beta as in TRL's ORPOTrainer:

        P(y|x)    = exp(log pi(y|x) / |y|)                 (the mean per-token probability, as ORPO)
        log odds  = log P(y|x) - log(1 - P(y|x))
        loss      = -beta * log sigma(log odds(y_w|x) - log odds(y_l|x))

    ORPO's full objective adds NLL(y_w|x); in CLO that is already the lambda * NLL(y_t|x_t) term. `gamma`
    is unused."""
    a_w, a_l = per_token(p.pi_w, p.n_w), per_token(p.pi_l, p.n_l)
    log_odds = (a_w - a_l) - (log1mexp(a_w) - log1mexp(a_l))
    return -beta * F.logsigmoid(log_odds)


def reference_rewards(p: Pairs, beta: float) -> tuple[Tensor, Tensor]:
    """DPO's implicit rewards beta * (log pi - log ref) of the chosen and the rejected responses."""
    return beta * (p.pi_w - p.ref_w), beta * (p.pi_l - p.ref_l)


def length_normalised_rewards(p: Pairs, beta: float) -> tuple[Tensor, Tensor]:
    """SimPO's reward beta * log pi(y|x) / |y| of the chosen and the rejected responses."""
    return beta * per_token(p.pi_w, p.n_w), beta * per_token(p.pi_l, p.n_l)


@dataclass(frozen=True)
class PrefLoss:
    """A pairwise loss: per-pair values, its implicit rewards, and whether it reads pi_ref."""

    name: str
    loss: Callable[[Pairs, float, float], Tensor]  # (pairs, beta, gamma) -> loss of each pair
    rewards: Callable[[Pairs, float], tuple[Tensor, Tensor]]
    needs_ref: bool


PREF_LOSSES: dict[str, PrefLoss] = {p.name: p for p in (
    PrefLoss("sigmoid", sigmoid_loss, reference_rewards, needs_ref=True),
    PrefLoss("ipo", ipo_loss, reference_rewards, needs_ref=True),
    PrefLoss("simpo", simpo_loss, length_normalised_rewards, needs_ref=False),
    PrefLoss("orpo", orpo_loss, length_normalised_rewards, needs_ref=False),
)}


def pair_stats(p: Pairs, beta: float, pref_loss: str = "sigmoid") -> dict[str, Tensor]:
    """The loss's implicit rewards over one side's pairs: chosen, rejected, margin, accuracy (means)."""
    r_w, r_l = PREF_LOSSES[pref_loss].rewards(p, beta)
    return {"reward_chosen": r_w.mean(), "reward_rejected": r_l.mean(), "margin": (r_w - r_l).mean(),
            "accuracy": (r_w > r_l).float().mean()}
