"""The losses against the paper's equations, computed by hand."""

import math

import pytest
import torch

from langshift.train.objectives import METHODS, clo_loss, dpo_loss, nll


def logsig(x):
    return -math.log1p(math.exp(-x))


def test_dpo_loss_is_eq_1_2():
    pi_w, pi_l, ref_w, ref_l, beta = -10.0, -12.0, -11.0, -11.5, 0.1
    z = beta * ((pi_w - ref_w) - (pi_l - ref_l))
    got = dpo_loss(*(torch.tensor([v]) for v in (pi_w, pi_l, ref_w, ref_l)), beta)
    assert got.item() == pytest.approx(-logsig(z), abs=1e-6)


def test_clo_loss_is_eq_8_to_12():
    torch.manual_seed(0)
    policy = torch.randn(3, 4) * 5 - 20
    ref = torch.randn(3, 4) * 5 - 20
    n_tok = torch.tensor([[5, 7, 6, 4], [3, 9, 8, 2], [4, 4, 4, 4]])
    lam, beta = 0.3, 0.2
    loss, m = clo_loss(policy, ref, n_tok, lam=lam, beta=beta)
    cl, tgt_logp, tgt_tok = 0.0, 0.0, 0
    for i in range(3):
        en_w, en_l, t_w, t_l = policy[i].tolist()
        r_en_w, r_en_l, r_t_w, r_t_l = ref[i].tolist()
        z_en = beta * ((en_w - r_en_w) - (en_l - r_en_l))  # x_en: chosen y_en, rejected y_t (Eq. 11)
        z_t = beta * ((t_w - r_t_w) - (t_l - r_t_l))  # x_t: chosen y_t, rejected y_en (Eq. 12)
        cl += -(logsig(z_en) + logsig(z_t)) / 3
        tgt_logp += t_w
        tgt_tok += int(n_tok[i, 2])
    sft = -tgt_logp / tgt_tok  # target-language NLL only, per token
    assert loss.item() == pytest.approx(lam * sft + (1 - lam) * cl, rel=1e-5)
    assert m["cl"].item() == pytest.approx(cl, rel=1e-5)
    both, _ = clo_loss(policy, ref, n_tok, lam=lam, beta=beta, nll_on="both")
    en_nll = -(policy[:, 0].sum() + policy[:, 2].sum()) / (n_tok[:, 0].sum() + n_tok[:, 2].sum())
    assert both.item() == pytest.approx(lam * en_nll.item() + (1 - lam) * cl, rel=1e-5)


def test_clo_at_reference_is_two_ln2_with_zero_rewards():
    policy = torch.randn(4, 4)
    loss, m = clo_loss(policy, policy.clone(), torch.ones(4, 4, dtype=torch.long), lam=0.0)
    assert loss.item() == pytest.approx(2 * math.log(2), abs=1e-6)
    for side in ("en", "tgt"):
        assert m[f"{side}/reward_chosen"] == 0 and m[f"{side}/reward_rejected"] == 0 and m[f"{side}/margin"] == 0


def test_clo_gradient_pushes_the_right_way():
    policy = torch.zeros(1, 4, requires_grad=True)
    loss, _ = clo_loss(policy, torch.zeros(1, 4), torch.ones(1, 4, dtype=torch.long), lam=0.0)
    loss.backward()
    g = policy.grad[0]
    assert g[0] < 0 and g[2] < 0  # raise log p of chosen (y_en|x_en, y_t|x_t)
    assert g[1] > 0 and g[3] > 0  # lower log p of rejected (y_t|x_en, y_en|x_t)


def test_nll_is_per_token():
    assert nll(torch.tensor([-4.0, -6.0]), torch.tensor([2, 3])).item() == pytest.approx(2.0)


def test_method_table():
    assert METHODS["clo"].seqs_per_unit == 4 and METHODS["clo"].units_per_record == 1
    assert METHODS["dpo"].units_per_record == 2 and METHODS["dpo"].seqs_per_unit == 2
    assert METHODS["sft"].unit_roles == (("en_chosen",), ("tgt_chosen",))
    assert METHODS["sft-tgt"].unit_roles == (("tgt_chosen",),)
    assert not METHODS["sft"].needs_ref and METHODS["dpo"].needs_ref
