"""Peer checks of the reference-free pair losses against TRL's own loss functions, on one batch.

Our tiny model scores the CLO sequences of a few records (`sequence_logps` through the engine's layout,
summed log-probs and completion lengths). The same log-probs, averaged per token, go through TRL's `CPOTrainer.cpo_loss`
(loss_type "simpo") and `ORPOTrainer.odds_ratio_loss`, on real trainer instances: their per-pair terms
(before any NLL weighting) must equal `simpo_loss` and `orpo_loss` within 1e-5. TRL's own
`get_batch_logps(average_log_prob=True)` on the model's logits checks our per-token averaging. IPO is
checked against TRL's `DPOTrainer(loss_type="ipo")` in test_trl_peer.py.
"""

from __future__ import annotations

import pytest
import torch

from langshift import models
from langshift.records import Record
from langshift.train.encode import Encoder, pad_batch
from langshift.train.logps import plan_layout, sequence_logps
from langshift.train.preference import Pairs, orpo_loss, pair_stats, simpo_loss

trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

RECORDS = [
    Record("r1", "sw", "Why is the sky blue?", "Air scatters blue light more than red light.",
           "Kwa nini anga ni la buluu?", "Hewa hutawanya mwanga wa buluu zaidi kuliko mwekundu."),
    Record("r2", "sw", "At what temperature does water boil?", "At one hundred degrees Celsius at sea level.",
           "Maji huchemka kwa joto gani?", "Kwa nyuzi joto mia moja kwenye usawa wa bahari."),
    Record("r3", "sw", "Add 2 and 3.", "2 + 3 = 5", "Ongeza 2 na 3.", "Jibu: 2 + 3 = 5"),
]
BETA, GAMMA = 2.0, 0.7  # SimPO-sized beta, a non-default gamma: a wrong scaling would show


@pytest.fixture(scope="module")
def scored(tiny_llama):
    """Both CLO sides of every record as (chosen, rejected) pairs, with our log-probs and lengths, and
    TRL's per-token averages of the same sequences from the model's full logits."""
    from trl.experimental.cpo import CPOTrainer

    model, tok = models.load(str(tiny_llama))
    encoder = Encoder(tok, models.chat_format(tok), max_length=3000)
    chosen, rejected = [], []
    for r in RECORDS:
        enc = encoder.encode(r)
        chosen += [enc["en_chosen"], enc["tgt_chosen"]]
        rejected += [enc["en_rejected"], enc["tgt_rejected"]]
    out = {}
    for name, seqs in (("w", chosen), ("l", rejected)):
        batch = pad_batch(seqs, tok.pad_token_id)
        with torch.no_grad():
            logp, n_tok = sequence_logps(model, seqs, plan_layout(model))
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        labels = torch.where(batch["completion_mask"].bool(), batch["input_ids"], -100)
        out[name] = (logp, n_tok, CPOTrainer.get_batch_logps(logits, labels, average_log_prob=True))
    pairs = Pairs(out["w"][0], out["l"][0], None, None, out["w"][1], out["l"][1])
    return model, tok, pairs, out["w"][2], out["l"][2]


def _trainer(cls, config_cls, model, tok, tmp_path, **kw):
    rows = [{"prompt": "Hi", "chosen": " there", "rejected": " no"}]  # construction only: the loss gets our log-probs
    args = config_cls(output_dir=str(tmp_path / cls.__name__), beta=BETA, use_cpu=True, bf16=False,
                      report_to="none", max_length=64, **kw)
    return cls(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows), processing_class=tok)


def test_per_token_average_matches_trl(scored):
    _, _, p, trl_w, trl_l = scored
    torch.testing.assert_close(p.pi_w / p.n_w, trl_w, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(p.pi_l / p.n_l, trl_l, atol=1e-6, rtol=1e-6)


def test_simpo_matches_trl_cpo_trainer(scored, tmp_path):
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    model, tok, p, trl_w, trl_l = scored
    trainer = _trainer(CPOTrainer, CPOConfig, model, tok, tmp_path, loss_type="simpo", simpo_gamma=GAMMA,
                       cpo_alpha=0.0)
    with torch.no_grad():
        theirs, r_w, r_l = trainer.cpo_loss(trl_w, trl_l)
    ours = simpo_loss(p, BETA, GAMMA)
    assert (ours - ours.mean()).abs().max() > 1e-3, "all pairs alike: the check would be weak"
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    stats = pair_stats(p, BETA, "simpo")  # our implicit rewards = the rewards TRL logs for SimPO
    assert stats["reward_chosen"].item() == pytest.approx(r_w.mean().item(), abs=1e-5)
    assert stats["reward_rejected"].item() == pytest.approx(r_l.mean().item(), abs=1e-5)


def test_orpo_matches_trl_orpo_trainer(scored, tmp_path):
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    model, tok, p, trl_w, trl_l = scored
    trainer = _trainer(ORPOTrainer, ORPOConfig, model, tok, tmp_path)
    with torch.no_grad():
        theirs, r_w, r_l, _, _ = trainer.odds_ratio_loss(trl_w, trl_l)
    # TRL's `losses` are beta * log sigma(log odds ratio); its loss is NLL - mean(losses): the per-pair term
    # before the NLL is -losses.
    ours = orpo_loss(p, BETA, GAMMA)
    assert (ours - ours.mean()).abs().max() > 1e-3, "all pairs alike: the check would be weak"
    torch.testing.assert_close(ours, -theirs, atol=1e-5, rtol=0)
    stats = pair_stats(p, BETA, "orpo")
    assert stats["reward_chosen"].item() == pytest.approx(r_w.mean().item(), abs=1e-5)
    assert stats["reward_rejected"].item() == pytest.approx(r_l.mean().item(), abs=1e-5)
