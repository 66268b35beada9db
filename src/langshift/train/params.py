"""Which parameters train: `attention` (the paper's default), `full`, or `lora` on the same modules.

The attention projections are found from the model's structure, not from a name list: the decoder
layers are the ModuleList with one entry per hidden layer, and in each layer the attention block is
the child whose class is an *Attention module (LlamaAttention, GPT2Attention, GPTNeoXAttention, ...).
Its linear projections (nn.Linear or GPT-2's Conv1D) are what trains; norms, MLPs, embeddings and
the head stay frozen.
"""

from __future__ import annotations

from torch import nn

MODES = ("attention", "full", "lora")


def _num_layers(model) -> int:
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        if getattr(cfg, key, None):
            return int(getattr(cfg, key))
    raise ValueError(f"cannot find the number of layers in {type(cfg).__name__}")


def decoder_layers(model) -> nn.ModuleList:
    n = _num_layers(model)
    for _, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n and len(module) > 0:
            if any(_attention_child(layer) is not None for layer in module):
                return module
    raise ValueError(f"no decoder-layer list of length {n} with attention blocks in {type(model).__name__}")


def _attention_child(layer: nn.Module) -> nn.Module | None:
    for _, child in layer.named_children():
        if type(child).__name__.endswith(("Attention", "Attention2", "SdpaAttention", "FlashAttention2")):
            return child
    return None


def _is_projection(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"


def attention_projection_names(model) -> list[str]:
    """Fully-qualified names of every attention projection module (q/k/v/o, c_attn/c_proj, ...)."""
    layers = decoder_layers(model)
    by_id = {id(m): name for name, m in model.named_modules()}
    names = []
    for layer in layers:
        attn = _attention_child(layer)
        if attn is None:
            continue
        prefix = by_id[id(attn)]
        names += [f"{prefix}.{n}" for n, m in attn.named_modules() if n and _is_projection(m)]
    if not names:
        raise ValueError(f"found attention blocks but no linear projections in {type(model).__name__}")
    return names


def select_trainable(model, mode: str = "attention", *, lora_r: int = 16, lora_alpha: int = 32,
                     lora_dropout: float = 0.0):
    """Set requires_grad per `mode`; returns the model (a PeftModel for `lora`)."""
    if mode not in MODES:
        raise ValueError(f"--trainable must be one of {MODES}, not {mode!r}")
    if mode == "full":
        model.requires_grad_(True)
        return model
    names = attention_projection_names(model)
    if mode == "lora":
        from peft import LoraConfig, get_peft_model

        fan_in_fan_out = any(type(model.get_submodule(n)).__name__ == "Conv1D" for n in names)
        cfg = LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules=names,
                         fan_in_fan_out=fan_in_fan_out, task_type="CAUSAL_LM")
        return get_peft_model(model, cfg)
    model.requires_grad_(False)
    for n in names:
        model.get_submodule(n).requires_grad_(True)
    return model


def trainable_summary(model) -> dict:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": trainable, "total": total, "share": trainable / max(total, 1)}
