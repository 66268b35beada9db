"""Training objectives as pure functions of per-sequence log-probabilities.

Notation. For a sequence (x, y), `logp` is log pi(y|x) = sum over completion tokens of
log pi(y_j | x, y_<j) (a sum, the DPO convention) and `n_tok` is |y|. Tensors of shape (n, k) hold the
k sequences of each of n training units, in the order a method's `unit_roles` names them.

    L_SFT  (nll_reduction "token", the default)   = - sum_i log pi(y_i|x_i) / sum_i |y_i|
           (nll_reduction "sequence", Eq. 4/9)    = - (1/N) sum_i log pi(y_i|x_i)
    L_CL   = mean_i [loss(x_en: y_en > y_t) + loss(x_t: y_t > y_en)]       (Eq. 5/10)
             loss = a pairwise preference loss (preference.py); "sigmoid" = DPO's -log sigma(z), with
             z_en, z_t of Eq. 6-7 / 11-12: the paper's L_CL
    L_CLO  = lambda * L_SFT(target only, or both languages) + (1 - lambda) * L_CL    (Eq. 3/8)
    L_CL with cross-target negatives (multilingual, `cl_negatives: all`; not in the paper):
           L_CL = mean_i [loss(x_en: y_en > y_t) + loss(x_t: y_t > y_en) + sum_{t' in P_i} loss(x_t: y_t > y_t')]
             P_i = the other target languages with a record of record i's English source; P_i = {} gives
             the paper's L_CL for that record (a "single").
    L_DPO  = mean over pairs of loss(x: y_w > y_l), each pair its own example    (Eq. 1-2)

The NLL's reduction. The paper's Eq. 9 writes L_SFT as a mean over the batch's sequences of each
sequence's summed NLL ("sequence"). On real lengths that sum is hundreds of nats and weighs the NLL
about a hundred times more against L_CL (about 1.4 at the start), so the default averages over
tokens ("token"), as TRL's CPO/ORPO trainers do. The reduction applies to every method's NLL (SFT's
too), so an ablation over it compares like with like.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from langshift.train.encode import SIDE
from langshift.train.preference import PREF_LOSSES, Pairs, pair_stats


def nll_per_token(logp: Tensor, n_tok: Tensor) -> Tensor:
    """Mean negative log-likelihood per completion token: -sum(logp) / sum(n_tok) (TRL's CPO/ORPO)."""
    return -logp.sum() / n_tok.sum().clamp(min=1)


def nll_per_sequence(logp: Tensor, n_tok: Tensor) -> Tensor:
    """Mean over sequences of each sequence's summed NLL: -(1/N) sum_i logp_i (the paper's Eq. 9)."""
    return -logp.mean()


NLL_REDUCTIONS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "token": nll_per_token,
    "sequence": nll_per_sequence,
}


def nll(logp: Tensor, n_tok: Tensor, reduction: str = "token") -> Tensor:
    """The NLL of sequences with log-probs `logp` and completion lengths `n_tok`, reduced by `reduction`."""
    return NLL_REDUCTIONS[reduction](logp, n_tok)


NLL_ON = {  # which of CLO's columns (en_chosen, en_rejected, tgt_chosen, tgt_rejected) the NLL covers
    "target": (2,),  # the paper's choice: y_t | x_t only
    "both": (2, 0),  # adds y_en | x_en (Table 5)
}


def clo_loss(policy: Tensor, ref: Tensor | None, n_tok: Tensor, *, lam: float = 0.5, beta: float = 0.1,
             nll_on: str = "target", pref_loss: str = "sigmoid", simpo_gamma: float = 0.5,
             nll_reduction: str = "token", present: Tensor | None = None,
             cross_metrics: bool = False) -> tuple[Tensor, dict]:
    """Cross-Lingual Optimization (Eq. 8-12). Columns: en_chosen, en_rejected, tgt_chosen, tgt_rejected,
    then any cross-target negatives x_t ++ y_t' (multilingual, `cl_negatives: all`).

    `nll_on`: "target" (the paper's choice: NLL on y_t|x_t only) or "both" (adds y_en|x_en, Table 5).
    `pref_loss`: the pairwise loss of both sides (preference.PREF_LOSSES); `ref` is None for a
    reference-free one. `nll_reduction`: "token" or "sequence" (Eq. 9 literally).

    Cross-target negatives: column j >= 4 of unit i, where `present[i, j]`, is one more rejected reply
    under x_t; its pair (x_t: y_t > y_t') is *summed* into the unit's target side:
        L_CL = mean_i [ l(x_en: y_en > y_t) + l(x_t: y_t > y_en) + sum_{t'} l(x_t: y_t > y_t') ]
    A sum, not a mean over negatives: each negative is one preference the model should hold, as each
    pair is in DPO; a mean would shrink the English negative's weight as languages are added, and with
    the sum a record without partners trains exactly as in single-language CLO. The English side is
    unchanged: across the records of one source, x_en already rejects every target's reply.
    `cross_metrics`: log the cross pairs' rewards under "xtgt/" (NaN when a batch has none, so every
    process logs the same keys).
    """
    if nll_on not in NLL_ON:
        raise ValueError(f"nll_on must be one of {', '.join(NLL_ON)}, not {nll_on!r}")
    pair_loss = PREF_LOSSES[pref_loss]
    en_w, en_l, t_w, t_l = policy[:, :4].unbind(-1)
    ref_en_w, ref_en_l, ref_t_w, ref_t_l = ref[:, :4].unbind(-1) if ref is not None else (None,) * 4
    sides = {"en": Pairs(en_w, en_l, ref_en_w, ref_en_l, n_tok[:, 0], n_tok[:, 1]),
             "tgt": Pairs(t_w, t_l, ref_t_w, ref_t_l, n_tok[:, 2], n_tok[:, 3])}
    per_unit = pair_loss.loss(sides["en"], beta, simpo_gamma) + pair_loss.loss(sides["tgt"], beta, simpo_gamma)
    cross = _cross_pairs(policy, ref, n_tok, present)
    if cross is not None:
        pairs, mask = cross
        per_unit = per_unit + torch.where(mask, pair_loss.loss(pairs, beta, simpo_gamma), 0.0).sum(-1)
    l_cl = per_unit.mean()
    cols = NLL_ON[nll_on]
    l_sft = nll(torch.cat([policy[:, c] for c in cols]), torch.cat([n_tok[:, c] for c in cols]), nll_reduction)
    loss = lam * l_sft + (1 - lam) * l_cl
    metrics = {"nll": l_sft.detach(), "cl": l_cl.detach(), "nll_en": nll(en_w, n_tok[:, 0], nll_reduction).detach()}
    with torch.no_grad():
        for side, pairs in sides.items():
            stats = pair_stats(pairs, beta, pref_loss)
            metrics.update({f"{side}/{k}": v for k, v in stats.items()})
        if cross_metrics:
            pairs, mask = cross if cross is not None else (_no_pairs(policy), policy.new_zeros(0, dtype=torch.bool))
            stats = pair_stats(Pairs(*(t[mask] if t is not None else None for t in pairs)), beta, pref_loss)
            metrics.update({f"xtgt/{k}": v for k, v in stats.items()})
    return loss, metrics


def _cross_pairs(policy: Tensor, ref: Tensor | None, n_tok: Tensor, present: Tensor | None) -> tuple[Pairs, Tensor] | None:
    """The pairs (x_t: y_t > y_t') of columns 4.. (shape (n, k-4) each, chosen broadcast) and the mask of
    the ones units have; None when no unit has a cross-target negative."""
    if policy.shape[1] <= 4:
        return None
    mask = present[:, 4:] if present is not None else torch.ones_like(policy[:, 4:], dtype=torch.bool)
    wide = policy[:, 4:].shape
    pairs = Pairs(policy[:, 2:3].expand(wide), policy[:, 4:], ref[:, 2:3].expand(wide) if ref is not None else None,
                  ref[:, 4:] if ref is not None else None, n_tok[:, 2:3].expand(wide), n_tok[:, 4:])
    return pairs, mask


def _no_pairs(like: Tensor) -> Pairs:
    empty = like.new_zeros(0)
    return Pairs(empty, empty, empty, empty, empty, empty)


# ------------------------------------------------------------------------------------ the methods
#
# A method's objective maps one batch of units to (loss, metrics). `policy`, `ref`, `n_tok` have shape
# (n_units, longest unit); `sides` names each unit's language side ("en" or "tgt"); `present` (n_units,
# longest unit) marks the columns a unit has when units differ in length (CLO's cross-target negatives),
# else None. DPO's and SFT's units never differ.


@dataclass(frozen=True)
class Hyper:
    """The objective's hyper-parameters (TrainConfig's lam, beta, nll, pref_loss, simpo_gamma, nll_reduction)."""

    lam: float = 0.5
    beta: float = 0.1
    nll_on: str = "target"
    pref_loss: str = "sigmoid"
    simpo_gamma: float = 0.5
    nll_reduction: str = "token"
    cl_negatives: str = "english"


def clo_objective(policy: Tensor, ref: Tensor | None, n_tok: Tensor, sides: list[str], hp: Hyper,
                  present: Tensor | None = None) -> tuple[Tensor, dict]:
    """L_CLO over units of (en_chosen, en_rejected, tgt_chosen, tgt_rejected[, cross-target negatives...]):
    see `clo_loss`."""
    return clo_loss(policy, ref, n_tok, lam=hp.lam, beta=hp.beta, nll_on=hp.nll_on, pref_loss=hp.pref_loss,
                    simpo_gamma=hp.simpo_gamma, nll_reduction=hp.nll_reduction, present=present,
                    cross_metrics=hp.cl_negatives == "all")


def dpo_objective(policy: Tensor, ref: Tensor | None, n_tok: Tensor, sides: list[str], hp: Hyper,
                  present: Tensor | None = None) -> tuple[Tensor, dict]:
    """The pairwise loss over (chosen, rejected) units, each its own example (no NLL term: with `orpo`
    this is ORPO's odds-ratio term alone); rewards logged per language side, the chosen NLL for reading."""
    pi_w, pi_l = policy.unbind(-1)
    ref_w, ref_l = ref.unbind(-1) if ref is not None else (None, None)
    pairs = Pairs(pi_w, pi_l, ref_w, ref_l, n_tok[:, 0], n_tok[:, 1])
    loss = PREF_LOSSES[hp.pref_loss].loss(pairs, hp.beta, hp.simpo_gamma).mean()
    metrics = {"nll": nll(pi_w, n_tok[:, 0], hp.nll_reduction).detach()}
    for side, idx in _side_masks(sides, policy.device).items():
        side_pairs = Pairs(*(t[idx] if t is not None else None for t in pairs))
        stats = pair_stats(side_pairs, hp.beta, hp.pref_loss)
        metrics.update({f"{side}/{k}": v.detach() for k, v in stats.items()})
    return loss, metrics


def sft_objective(policy: Tensor, ref: Tensor | None, n_tok: Tensor, sides: list[str], hp: Hyper,
                  present: Tensor | None = None) -> tuple[Tensor, dict]:
    """L_SFT over units of one chosen sequence; NLL logged per language side."""
    loss = nll(policy[:, 0], n_tok[:, 0], hp.nll_reduction)
    metrics = {"nll": loss.detach()}
    for side, idx in _side_masks(sides, policy.device).items():
        metrics[f"{side}/nll"] = (nll(policy[idx, 0], n_tok[idx, 0], hp.nll_reduction).detach() if idx.any()
                                  else policy.new_tensor(float("nan")))
    return loss, metrics


def _side_masks(sides: list[str], device) -> dict[str, Tensor]:
    """Boolean masks of the units of each language side. A side absent from a batch gives NaN metrics
    (means over nothing), so every process logs the same keys and DDP can gather them."""
    return {side: torch.tensor([s == side for s in sides], dtype=torch.bool, device=device) for side in ("en", "tgt")}


@dataclass(frozen=True)
class Method:
    """A training method = which sequences form one unit, and the objective over a batch of units.

    Units of one record are shuffled independently (DPO's "standard DPO on cross-lingual data", SFT's
    mixed-language pairs); CLO's single unit keeps a record's four sequences in the same batch.
    `pairwise`: the objective compares a chosen and a rejected response (through `Hyper.pref_loss`).
    `has_nll`: the loss has an NLL term (which `Hyper.nll_reduction` reduces).
    `cross_negatives`: its target-side unit takes the other targets' replies as extra negatives
    (`cl_negatives: all`, multilingual runs).
    """

    name: str
    unit_roles: tuple[tuple[str, ...], ...]
    objective: Callable[..., tuple[Tensor, dict]]  # (policy, ref, n_tok, sides, hyper, present=None)
    pairwise: bool
    has_nll: bool
    cross_negatives: bool = False

    @property
    def units_per_record(self) -> int:
        return len(self.unit_roles)

    @property
    def seqs_per_unit(self) -> int:
        return len(self.unit_roles[0])

    def needs_ref(self, pref_loss: str) -> bool:
        """Whether training reads pi_ref: only a pairwise method under a loss with a reference term. When
        False the recipe runs no reference pass, opens no reference cache and loads no second model."""
        return self.pairwise and PREF_LOSSES[pref_loss].needs_ref


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("clo", (("en_chosen", "en_rejected", "tgt_chosen", "tgt_rejected"),), clo_objective, pairwise=True,
           has_nll=True, cross_negatives=True),
    Method("dpo", (("en_chosen", "en_rejected"), ("tgt_chosen", "tgt_rejected")), dpo_objective, pairwise=True,
           has_nll=False),
    Method("sft", (("en_chosen",), ("tgt_chosen",)), sft_objective, pairwise=False, has_nll=True),
    Method("sft-eng", (("en_chosen",),), sft_objective, pairwise=False, has_nll=True),
    Method("sft-tgt", (("tgt_chosen",),), sft_objective, pairwise=False, has_nll=True),
)}
# Two-stage: SFT on the chosen responses of both languages, then DPO with the SFT model as policy and
# reference (Hong et al. 2024 protocol, paper §4.1).
PIPELINES: dict[str, tuple[str, ...]] = {name: (name,) for name in METHODS} | {"sft+dpo": ("sft", "dpo")}


def unit_side(roles: tuple[str, ...]) -> str:
    return SIDE[roles[0]]
