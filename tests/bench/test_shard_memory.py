"""bench/shard_memory.py: its parameter counts are the trainer's, and its DDP bytes are what a real AdamW
step allocates (one process holds what one DDP rank holds, less the all-reduce buckets)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

spec = importlib.util.spec_from_file_location("shard_memory", Path(__file__).parents[2] / "bench" / "shard_memory.py")
shard_memory = importlib.util.module_from_spec(spec)
sys.modules["shard_memory"] = shard_memory  # its dataclasses look their module up
spec.loader.exec_module(shard_memory)

TINY = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 160,
        "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 3, "vocab_size": 300,
        "tie_word_embeddings": False}


@pytest.mark.parametrize("trainable", ["attention", "full"])
def test_counts_and_ddp_bytes_match_a_real_adamw_step(trainable):
    from transformers import AutoConfig, AutoModelForCausalLM

    from langshift.train.params import select_trainable

    c = shard_memory.counts(TINY, trainable)
    torch.manual_seed(0)
    model = select_trainable(AutoModelForCausalLM.from_config(AutoConfig.for_model(**TINY)), trainable)
    trained = [p for p in model.parameters() if p.requires_grad]
    assert (c.params, c.trainable) == (sum(p.numel() for p in model.parameters()), sum(p.numel() for p in trained))
    # attention-only: q, k, v, o of each layer; k and v are narrower (2 of 4 heads share keys and values)
    if trainable == "attention":
        assert c.trainable == 3 * (2 * 64 * 64 + 2 * 64 * 32)
    opt = torch.optim.AdamW(trained, lr=1e-3)
    model(torch.randint(0, 300, (2, 8)), labels=torch.randint(0, 300, (2, 8))).loss.backward()
    opt.step()
    nbytes = lambda ts: sum(t.numel() * t.element_size() for t in ts)  # noqa: E731
    moments = [t for state in opt.state.values() for k, t in state.items() if k != "step"]
    per = shard_memory.ddp(c)
    assert per.params == nbytes(model.parameters()) and per.grads == nbytes(p.grad for p in trained)
    assert per.optimizer == nbytes(moments)


def test_fsdp2_divides_the_states_and_keeps_two_bf16_units():
    c = shard_memory.Counts(params=800, trainable=200, largest_unit=50)
    per = shard_memory.fsdp2(c, ranks=8)
    assert (per.params, per.grads, per.optimizer, per.other) == (400, 100, 200, 200)
    assert shard_memory.ddp(c).total == 4 * 800 + 16 * 200
