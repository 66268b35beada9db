"""Peer check: our DPO and IPO pair losses on our log-probs equal TRL's `DPOTrainer` loss (loss_type
"sigmoid", "ipo") on the same model and batch.

TRL gets plain-text triplets (prompt = our chat-format prompt text, chosen/rejected = response + the
turn-closing text) and tokenizes them itself; we first assert that its token ids are exactly our
Encoder's. At step 0 policy = reference gives ln 2 whatever the code does, so TRL gets an explicit
`ref_model` (same architecture, another seed) and we feed our loss the reference log-probs of that model.
"""

from __future__ import annotations

import math

import pytest
import torch

from langshift import models
from langshift.records import Record
from langshift.testing.tiny import make_tiny_model
from langshift.train.encode import Encoder
from langshift.train.logps import plan_layout, sequence_logps
from langshift.train.objectives import METHODS, Hyper
from langshift.train.preference import Pairs, pair_stats, sigmoid_loss

trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

BETA = 1.0  # random tiny models are near-uniform: a large beta keeps the loss well away from ln 2

RECORDS = [
    Record(
        "r1",
        "sw",
        "Why is the sky blue?",
        "Air scatters blue light more than red light.",
        "Kwa nini anga ni la buluu?",
        "Hewa hutawanya mwanga wa buluu zaidi kuliko mwekundu.",
    ),
    Record(
        "r2",
        "sw",
        "At what temperature does water boil?",
        "At one hundred degrees Celsius at sea level.",
        "Maji huchemka kwa joto gani?",
        "Kwa nyuzi joto mia moja kwenye usawa wa bahari.",
    ),
    Record(
        "r3",
        "sw",
        "Write a short morning greeting.",
        "Good morning! I hope you slept well.",
        "Andika salamu fupi ya asubuhi.",
        "Habari za asubuhi! Natumaini ulilala salama.",
    ),
    Record("r4", "sw", "Add 2 and 3.", "2 + 3 = 5", "Ongeza 2 na 3.", "Jibu: 2 + 3 = 5"),
]


def _triplets(encoder: Encoder, fmt, tok, records):
    """Our sequences in TRL's pair order, and the plain-text rows that should tokenize to them."""
    rows, pairs = [], []
    for r in records:
        enc = encoder.encode(r)
        for prompt, (w, rej), (yw, yl) in (
            (r.en_prompt, ("en_chosen", "en_rejected"), (r.en_response, r.tgt_response)),
            (r.tgt_prompt, ("tgt_chosen", "tgt_rejected"), (r.tgt_response, r.en_response)),
        ):
            rows.append(
                {"prompt": fmt.prompt_text(tok, prompt), "chosen": yw + fmt.end, "rejected": yl + fmt.end}
            )
            pairs.append((enc[w], enc[rej]))
    return rows, pairs


def _our_logps(model, pairs):
    """(chosen, rejected) log-probs of each pair through the engine's layout: a pair shares its prompt
    (one row), the rows packed, as `--method dpo` trains them."""
    plan = plan_layout(model)
    assert plan.share, plan.why
    with torch.no_grad():
        logps, _ = sequence_logps(model, [s for pair in pairs for s in pair], plan)
    return logps.view(-1, 2).unbind(1)


@pytest.mark.parametrize(("family", "loss_type"), [("llama", "sigmoid"), ("gpt2", "sigmoid"), ("llama", "ipo")])
def test_dpo_loss_matches_trl(family, loss_type, tiny_llama, tiny_gpt2, tmp_path):
    from trl import DPOConfig, DPOTrainer

    policy_dir = {"llama": tiny_llama, "gpt2": tiny_gpt2}[family]
    ref_dir = make_tiny_model(tmp_path / "ref", family, seed=1)
    policy, tok = models.load(str(policy_dir))
    ref, ref_tok = models.load(str(ref_dir))
    assert ref_tok.get_vocab() == tok.get_vocab()  # the tokenizer is trained deterministically
    fmt = models.chat_format(tok)
    encoder = Encoder(tok, fmt, max_length=3000)
    rows, pairs = _triplets(encoder, fmt, tok, RECORDS)

    # --- TRL: its own tokenization, its own collator, its own loss
    args = DPOConfig(
        output_dir=str(tmp_path / "trl"),
        beta=BETA,
        per_device_train_batch_size=len(rows),
        bf16=False,
        use_cpu=True,
        activation_checkpointing=False,
        report_to="none",
        max_length=None,
        loss_type=loss_type,
    )
    trainer = DPOTrainer(
        model=models.load(str(policy_dir))[0],
        ref_model=models.load(str(ref_dir))[0],
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tok,
    )
    processed = trainer.train_dataset
    for row, (w, rej) in zip(
        processed, pairs, strict=True
    ):  # same token ids, same prompt/completion boundary
        assert row["prompt_ids"] == w.ids[: w.prompt_len] == rej.ids[: rej.prompt_len]
        assert row["chosen_ids"] == w.ids[w.prompt_len :]
        assert row["rejected_ids"] == rej.ids[rej.prompt_len :]
    inputs = trainer.data_collator([processed[i] for i in range(len(processed))])
    trainer.model.train()
    with torch.no_grad():
        trl_loss = trainer.compute_loss(trainer.model, inputs).item()
    trl_metrics = {k: v[-1] for k, v in trainer._metrics["train"].items() if isinstance(v, list) and v}

    # --- ours: the engine's layout on each model (prompts shared, rows packed), then the pure loss function
    pi_w, pi_l = _our_logps(policy, pairs)
    ref_w, ref_l = _our_logps(ref, pairs)
    n_tok = torch.tensor([[len(w.ids) - w.prompt_len, len(rej.ids) - rej.prompt_len] for w, rej in pairs])
    pairs_t = Pairs(pi_w, pi_l, ref_w, ref_l, n_tok[:, 0], n_tok[:, 1])
    stats = {k: v.item() for k, v in pair_stats(pairs_t, BETA, loss_type).items()}
    if loss_type == "sigmoid":
        ours = sigmoid_loss(pairs_t, BETA, 0.0).mean().item()
        assert abs(ours - math.log(2)) > 1e-2, "policy and reference too close: the check would be trivial"
        assert ours == pytest.approx(trl_loss, abs=1e-4)
    assert stats["reward_chosen"] == pytest.approx(trl_metrics["rewards/chosen"], abs=1e-4)
    assert stats["reward_rejected"] == pytest.approx(trl_metrics["rewards/rejected"], abs=1e-4)
    assert stats["margin"] == pytest.approx(trl_metrics["rewards/margins"], abs=1e-4)
    assert stats["accuracy"] == pytest.approx(trl_metrics["rewards/accuracies"], abs=1e-6)
    assert pi_w.mean().item() == pytest.approx(trl_metrics["logps/chosen"], rel=1e-5)
    assert pi_l.mean().item() == pytest.approx(trl_metrics["logps/rejected"], rel=1e-5)

    # The engine's DPO method (what `--method dpo` trains on) gives the same number from the same units.
    method_loss, method_metrics = METHODS["dpo"].objective(
        torch.stack([pi_w, pi_l], 1),
        torch.stack([ref_w, ref_l], 1),
        n_tok,
        ["en", "tgt"] * len(RECORDS),
        Hyper(lam=0.5, beta=BETA, nll_on="target", pref_loss=loss_type),
    )
    assert method_loss.item() == pytest.approx(trl_loss, abs=1e-4)
    both_sides = (method_metrics["en/reward_chosen"] + method_metrics["tgt/reward_chosen"]).item() / 2
    assert both_sides == pytest.approx(trl_metrics["rewards/chosen"], abs=1e-4)  # equal sides: mean of means
