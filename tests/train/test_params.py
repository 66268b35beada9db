import pytest
import torch
from transformers import AutoModelForCausalLM

from langshift.testing.tiny import FAMILIES, make_config
from langshift.train.params import attention_projection_names, select_trainable, trainable_summary

EXPECTED = {  # what the structural search must find per layer, by family
    "llama": {"q_proj", "k_proj", "v_proj", "o_proj"},
    "mistral": {"q_proj", "k_proj", "v_proj", "o_proj"},
    "qwen2": {"q_proj", "k_proj", "v_proj", "o_proj"},
    "gemma": {"q_proj", "k_proj", "v_proj", "o_proj"},
    "gemma3": {"q_proj", "k_proj", "v_proj", "o_proj"},
    "gpt2": {"c_attn", "c_proj"},
    "gpt_neox": {"query_key_value", "dense"},
}


def _model(family):
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(make_config(family, 128))


@pytest.mark.parametrize("family", FAMILIES)
def test_attention_projections_found_by_structure(family):
    names = attention_projection_names(_model(family))
    assert len(names) == 2 * len(EXPECTED[family])  # two layers
    assert {n.rsplit(".", 1)[1] for n in names} == EXPECTED[family]
    assert not any("mlp" in n for n in names)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_attention_mode_leaves_everything_else_bit_identical(family):
    model = select_trainable(_model(family), "attention")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ids = torch.randint(0, 128, (2, 12))
    for _ in range(3):
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()
    attn = tuple(attention_projection_names(model))
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith(attn) for k in changed)
    untouched = [k for k in before if not k.startswith(attn)]
    assert untouched and all(torch.equal(model.state_dict()[k], before[k]) for k in untouched)


def test_modes_and_lora():
    full = trainable_summary(select_trainable(_model("llama"), "full"))
    attn = trainable_summary(select_trainable(_model("llama"), "attention"))
    assert full["share"] == 1.0 and 0 < attn["share"] < 1
    lora = select_trainable(_model("gpt2"), "lora", lora_r=2)
    trainable = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert any("c_attn" in n for n in trainable) and not any("mlp" in n for n in trainable)
    with pytest.raises(ValueError, match="must be one of"):
        select_trainable(_model("llama"), "mlp")
