"""The losses against the paper's equations, computed by hand."""

import math

import pytest
import torch
import torch.nn.functional as F

from langshift.train.objectives import METHODS, Hyper, clo_loss, nll
from langshift.train.preference import PREF_LOSSES, Pairs, sigmoid_loss


def logsig(x):
    return -math.log1p(math.exp(-x))


def test_dpo_loss_is_eq_1_2():
    pi_w, pi_l, ref_w, ref_l, beta = -10.0, -12.0, -11.0, -11.5, 0.1
    z = beta * ((pi_w - ref_w) - (pi_l - ref_l))
    got = sigmoid_loss(Pairs(*(torch.tensor([v]) for v in (pi_w, pi_l, ref_w, ref_l, 9, 9))), beta, 0.0)
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
    assert not METHODS["sft"].needs_ref("sigmoid") and METHODS["dpo"].needs_ref("sigmoid")
    assert METHODS["clo"].needs_ref("ipo") and METHODS["clo"].needs_ref("sigmoid")
    assert not METHODS["clo"].needs_ref("simpo") and not METHODS["clo"].needs_ref("orpo")
    assert not METHODS["dpo"].needs_ref("simpo")
    assert set(PREF_LOSSES) == {"sigmoid", "ipo", "simpo", "orpo"}


# ---- the pair loss table: sigmoid is today's CLO bit for bit; the others are their equations


def _batch():
    g = torch.Generator().manual_seed(3)
    policy = torch.randn(5, 4, generator=g) * 6 - 30
    ref = torch.randn(5, 4, generator=g) * 6 - 30
    n_tok = torch.randint(3, 40, (5, 4), generator=g)
    return policy, ref, n_tok


def _clo_before_the_table(policy, ref, n_tok, lam, beta):
    """CLO's loss and metrics as written before the loss table (commit 1d27249), inline."""
    en_w, en_l, t_w, t_l = policy.unbind(-1)
    ref_en_w, ref_en_l, ref_t_w, ref_t_l = ref.unbind(-1)
    z_en = beta * ((en_w - ref_en_w) - (en_l - ref_en_l))
    z_t = beta * ((t_w - ref_t_w) - (t_l - ref_t_l))
    l_cl = -(F.logsigmoid(z_en) + F.logsigmoid(z_t)).mean()
    l_sft = -t_w.sum() / n_tok[:, 2].sum().clamp(min=1)
    metrics = {"nll": l_sft, "cl": l_cl, "nll_en": -en_w.sum() / n_tok[:, 0].sum().clamp(min=1)}
    for side, (w, lo, rw, rl) in {"en": (en_w, en_l, ref_en_w, ref_en_l), "tgt": (t_w, t_l, ref_t_w, ref_t_l)}.items():
        r_w, r_l = beta * (w - rw), beta * (lo - rl)
        metrics.update({f"{side}/reward_chosen": r_w.mean(), f"{side}/reward_rejected": r_l.mean(),
                        f"{side}/margin": (r_w - r_l).mean(), f"{side}/accuracy": (r_w > r_l).float().mean()})
    return lam * l_sft + (1 - lam) * l_cl, metrics


def test_sigmoid_is_todays_clo_bit_for_bit():
    policy, ref, n_tok = _batch()
    want_loss, want = _clo_before_the_table(policy, ref, n_tok, 0.5, 0.1)
    loss, got = METHODS["clo"].objective(policy, ref, n_tok, ["tgt"] * 5, Hyper())  # the defaults
    assert torch.equal(loss, want_loss)
    assert got.keys() == want.keys()
    for k in want:
        assert torch.equal(got[k], want[k]), k


def test_sigmoid_dpo_is_todays_dpo_bit_for_bit():
    policy, ref, n_tok = _batch()
    pi, rf, n = policy[:, :2], ref[:, :2], n_tok[:, :2]
    loss, got = METHODS["dpo"].objective(pi, rf, n, ["en", "tgt", "en", "tgt", "en"], Hyper())
    z = 0.1 * ((pi[:, 0] - rf[:, 0]) - (pi[:, 1] - rf[:, 1]))
    assert torch.equal(loss, (-F.logsigmoid(z)).mean())
    en = torch.tensor([True, False, True, False, True])
    assert torch.equal(got["en/reward_chosen"], (0.1 * (pi[en, 0] - rf[en, 0])).mean())


def test_losses_at_the_reference_are_their_equations():
    """Step 0 (policy = reference): each loss's value written out from its paper's equation."""
    beta, gamma = 0.1, 0.5
    pi = torch.tensor([[-20.0, -30.0, -24.0, -18.0]])  # en_w, en_l, t_w, t_l: log pi(y|x), summed
    n_tok = torch.tensor([[10, 12, 8, 9]])
    a = [-20 / 10, -30 / 12, -24 / 8, -18 / 9]  # mean log-prob per token

    def logsig(x):
        return -math.log1p(math.exp(-x))

    def log_odds(m):  # log(p / (1 - p)) of p = exp(m)
        return m - math.log(1 - math.exp(m))

    expected = {
        # IPO: h = 0 on both sides, so each side gives (0 - 1/(2 beta))^2 = 25
        "ipo": 2 * (1 / (2 * beta)) ** 2,
        # SimPO: -log sigma(beta * (a_w - a_l) - gamma) per side; English y_en > y_t, target y_t > y_en
        "simpo": -logsig(beta * (a[0] - a[1]) - gamma) - logsig(beta * (a[2] - a[3]) - gamma),
        # ORPO: -beta * log sigma(log odds(y_w) - log odds(y_l)) per side
        "orpo": -beta * logsig(log_odds(a[0]) - log_odds(a[1])) - beta * logsig(log_odds(a[2]) - log_odds(a[3])),
    }
    for name, value in expected.items():
        ref = pi.clone() if PREF_LOSSES[name].needs_ref else None
        loss, m = clo_loss(pi, ref, n_tok, lam=0.0, beta=beta, pref_loss=name, simpo_gamma=gamma)
        assert loss.item() == pytest.approx(value, rel=1e-6), name
        assert m["cl"].item() == pytest.approx(value, rel=1e-6), name
    assert expected["ipo"] == pytest.approx(50.0)


def test_ipo_is_its_equation_off_the_reference():
    """(h - 1/(2 beta))^2 with h the difference of per-token log-ratios, on hand-made log-probs."""
    p = Pairs(torch.tensor([-12.0]), torch.tensor([-40.0]), torch.tensor([-15.0]), torch.tensor([-35.0]),
              torch.tensor([6]), torch.tensor([10]))
    h = (-12 + 15) / 6 - (-40 + 35) / 10  # 0.5 + 0.5 = 1.0
    assert PREF_LOSSES["ipo"].loss(p, 0.25, 0.0).item() == pytest.approx((h - 1 / (2 * 0.25)) ** 2)
    assert PREF_LOSSES["ipo"].loss(p, 0.5, 0.0).item() == pytest.approx(0.0)  # h = 1/(2 beta): at its target


def test_reference_free_losses_ignore_the_reference():
    policy, ref, n_tok = _batch()
    for name in ("simpo", "orpo"):
        with_ref, _ = clo_loss(policy, ref, n_tok, pref_loss=name)
        without, m = clo_loss(policy, None, n_tok, pref_loss=name)
        assert torch.equal(with_ref, without)
        r_w = 0.1 * policy[:, 2] / n_tok[:, 2]  # the implicit reward: beta * mean log-prob per token
        assert m["tgt/reward_chosen"].item() == pytest.approx(r_w.mean().item(), rel=1e-6)


def test_every_loss_logs_the_same_metric_keys():
    policy, ref, n_tok = _batch()
    keys = {name: set(clo_loss(policy, ref, n_tok, pref_loss=name)[1]) for name in PREF_LOSSES}
    assert all(k == keys["sigmoid"] for k in keys.values())
    assert {"en/reward_chosen", "tgt/margin", "tgt/accuracy", "nll", "cl"} <= keys["sigmoid"]


def test_nll_reduction_sequence_is_eq_9():
    policy, ref, n_tok = _batch()
    loss, m = clo_loss(policy, ref, n_tok, lam=1.0, nll_reduction="sequence")
    assert loss.item() == pytest.approx(-policy[:, 2].sum().item() / 5, rel=1e-6)  # (1/N) sum_i -log pi(y_t|x_t)
    both, _ = clo_loss(policy, ref, n_tok, lam=1.0, nll_on="both", nll_reduction="sequence")
    assert both.item() == pytest.approx(-(policy[:, 2].sum() + policy[:, 0].sum()).item() / 10, rel=1e-6)
    token, _ = clo_loss(policy, ref, n_tok, lam=1.0)
    assert token.item() == pytest.approx(-policy[:, 2].sum().item() / n_tok[:, 2].sum().item(), rel=1e-6)
    sft, _ = METHODS["sft"].objective(policy[:, :1], None, n_tok[:, :1], ["en"] * 5, Hyper(nll_reduction="sequence"))
    assert sft.item() == pytest.approx(-policy[:, 0].mean().item(), rel=1e-6)  # SFT's NLL follows the option too
