"""Write a langshift model as GGUF, the file llama.cpp, Ollama and LM Studio run.

    export_gguf("runs/clo-sw", "clo-sw.f16.gguf")            # f16
    export_gguf("runs/clo-sw", "clo-sw.q8_0.gguf", "q8_0")   # 8-bit

The model comes from anything `langshift.models.load` takes (a training output, a LoRA adapter
directory -- merged first --, a hub id, a `.gguf`, `smollm2`, `gemma3-270m`). What a loadable file needs was read from
llama.cpp's `convert_hf_to_gguf.py`; names and keys come from the `gguf` package's own tables:

  * hyper-parameters under `<arch>.*` (context length, widths, heads, RMS epsilon, rope base/scaling);
  * tensors renamed by `gguf.TensorNameMap` (`model.layers.3.self_attn.q_proj.weight` ->
    `blk.3.attn_q.weight`); a tied LM head is not written (llama.cpp reuses `token_embd`);
  * for the `llama` architecture (Llama, SmolLM2, Mistral) the Q and K rows reordered per head from
    HF's rotate-half rope layout to the interleaved one llama.cpp's `llama` rope uses (`ROPE_LAYOUT`);
    Qwen2 runs rotate-half ("neox") rope in llama.cpp and is written as is;
  * the tokenizer (`export/gguf_vocab.py`): its vocabulary, merges or scores, pre-tokenizer name,
    special tokens and chat template;
  * tensor types as llama.cpp's converter writes them: norms and biases F32; matrices F16, or Q8_0
    (rows that are a multiple of 32 wide; the rest stay F16).

Tensors are converted and written one at a time, so the export needs little memory beyond the model.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from langshift.export.gguf_vocab import UnsupportedModelError, write_vocab
from langshift.files import InputError

# -------------------------------------------------------------------------------------- architectures


@dataclass(frozen=True)
class Arch:
    gguf_arch: object  # gguf.MODEL_ARCH member
    interleave_qk: bool  # llama.cpp's `llama` rope: Q/K rows reordered (see interleave_rope_rows)
    # Gemma's RMSNorm scales by (1 + w); llama.cpp's by w: its converter writes w + 1 (and transformers'
    # GGUF loader subtracts the 1 again)
    norm_offset: float = 0.0
    sliding_window: bool = False  # write `<arch>.attention.sliding_window` (Gemma 3's local layers)


def _archs() -> dict[str, Arch]:
    import gguf

    llama = Arch(gguf.MODEL_ARCH.LLAMA, interleave_qk=True)
    return {
        "LlamaForCausalLM": llama,  # Llama 2/3, SmolLM2
        "MistralForCausalLM": llama,  # llama.cpp runs Mistral as `llama`
        "Qwen2ForCausalLM": Arch(gguf.MODEL_ARCH.QWEN2, interleave_qk=False),
        # Gemma 3 (text): "neox" rope in llama.cpp (rows as they are), sqrt(hidden) embedding scale applied
        # by llama.cpp itself, local layers' rope base 10,000 fixed there, global base from rope.freq_base
        "Gemma3ForCausalLM": Arch(gguf.MODEL_ARCH.GEMMA3, interleave_qk=False, norm_offset=1.0, sliding_window=True),
    }


def arch_of(model) -> Arch:
    """How to write `model`: by its config's `architectures` (its class when the config names none)."""
    config = model.config
    names = list(getattr(config, "architectures", None) or [type(model).__name__])
    archs = _archs()
    for name in names:
        if name in archs:
            return archs[name]
    raise UnsupportedModelError(
        f"GGUF export supports {', '.join(sorted(archs))}; this model is "
        f"{', '.join(names) or getattr(config, 'model_type', 'of an unknown architecture')}")


def interleave_rope_rows(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Reorder each head's rows from HF's rotate-half rope layout to the interleaved layout.

    HF rotates dimension i of a head together with i + d/2; llama.cpp's `llama` rope rotates 2i with
    2i+1. With head h's rows r_h[0..d) (the same for a bias), the output head is
        out_h[2i] = r_h[i],   out_h[2i+1] = r_h[i + d/2]      for i < d/2,
    so q·k is unchanged and each rotated pair sits where llama.cpp looks for it."""
    rows = weight.shape[0]
    half = rows // n_heads // 2
    return weight.reshape(n_heads, 2, half, *weight.shape[1:]).transpose(1, 2).reshape(weight.shape)


# ------------------------------------------------------------------------------------------ rope


def _rope(config) -> dict:
    """Rope settings as one dict (`rope_type`, `rope_theta`, scaling fields), for transformers 5's
    `rope_parameters` as for the older `rope_theta` + `rope_scaling`. Per layer type (Gemma 3: global
    and sliding layers), the global layers' (GGUF's rope.freq_base)."""
    params = dict(getattr(config, "rope_parameters", None) or {})
    if "full_attention" in params:
        local = params.get("sliding_attention") or {}
        if float(local.get("rope_theta", 10000.0)) != 10000.0:  # llama.cpp fixes the local base at 10,000
            raise UnsupportedModelError(f"sliding layers' rope base {local['rope_theta']} (llama.cpp uses 10000)")
        params = dict(params["full_attention"])
    if not params:
        params = dict(getattr(config, "rope_scaling", None) or {})
        params.setdefault("rope_theta", getattr(config, "rope_theta", 10000.0))
    params.setdefault("rope_type", params.get("type", "default"))
    return params


def llama3_rope_factors(rope: dict, head_dim: int) -> np.ndarray:
    """Per-frequency divisors of Llama 3.1's rope scaling (llama.cpp's `rope_freqs` tensor).

    With base b, f_i = b^(-2i/d) and wavelength λ_i = 2π/f_i, factor F, low/high frequency factors
    l, h and original context L: λ_i < L/h keeps f_i (divisor 1); λ_i > L/l divides it by F; in
    between, with s = (L/λ_i − l)/(h − l), the divisor is 1 / ((1 − s)/F + s)."""
    base, factor = float(rope["rope_theta"]), float(rope["factor"])
    low, high = float(rope.get("low_freq_factor", 1.0)), float(rope.get("high_freq_factor", 4.0))
    original = float(rope.get("original_max_position_embeddings", 8192))
    divisors = []
    for i in range(0, head_dim, 2):
        wavelength = 2 * math.pi * base ** (i / head_dim)
        if wavelength < original / high:
            divisors.append(1.0)
        elif wavelength > original / low:
            divisors.append(factor)
        else:
            smooth = (original / wavelength - low) / (high - low)
            divisors.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.asarray(divisors, dtype=np.float32)


def _rope_none(writer, rope: dict, head_dim: int) -> dict:
    return {}


def _rope_linear(writer, rope: dict, head_dim: int) -> dict:
    import gguf

    writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
    writer.add_rope_scaling_factor(float(rope["factor"]))
    return {}


def _rope_llama3(writer, rope: dict, head_dim: int) -> dict:
    import gguf

    return {gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight": llama3_rope_factors(rope, head_dim)}


# rope_type -> writes its metadata, returns extra tensors
ROPE_SCALING: dict[str, Callable] = {"default": _rope_none, "linear": _rope_linear, "llama3": _rope_llama3}


# ------------------------------------------------------------------------------------------ tensors

# How each out type stores a matrix (norms, biases and rope factors are always F32): the GGML type
# for a matrix of that shape. Q8_0 packs 32 values of one row per block, so rows must divide by 32.
def _matrix_f16(shape) -> str:
    return "F16"


def _matrix_q8_0(shape) -> str:
    return "Q8_0" if shape[-1] % 32 == 0 else "F16"


OUT_TYPES: dict[str, tuple[str, Callable]] = {  # --type -> (llama file type, matrix type)
    "f16": ("MOSTLY_F16", _matrix_f16),
    "q8_0": ("MOSTLY_Q8_0", _matrix_q8_0),
}


@dataclass(frozen=True)
class Tensor:
    """One GGUF tensor: its name and where its values come from, converted only when written (so the
    export holds one converted tensor at a time, not a second copy of the model)."""

    name: str
    source: torch.Tensor
    rope_heads: int | None = None  # Q/K of the `llama` architecture: reorder rows for this many heads
    offset: float = 0.0  # added to every value (Gemma's norms: Arch.norm_offset)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.source.shape)

    def values(self) -> torch.Tensor:
        t = self.source.detach().to(device="cpu", dtype=torch.float32)
        t = interleave_rope_rows(t, self.rope_heads) if self.rope_heads else t
        return t + self.offset if self.offset else t


def ggml_type(shape: tuple[int, ...], out_type: str) -> str:
    return OUT_TYPES[out_type][1](shape) if len(shape) >= 2 else "F32"


def tensor_info(shape: tuple[int, ...], kind: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape as GGUFWriter takes it, numpy dtype, bytes) of a tensor of `shape` stored as `kind`."""
    import gguf

    if kind == "Q8_0":
        byte_shape = gguf.quants.quant_shape_to_byte_shape(shape, gguf.GGMLQuantizationType.Q8_0)
        return byte_shape, np.dtype(np.uint8), int(np.prod(byte_shape))
    dtype = np.dtype(np.float16 if kind == "F16" else np.float32)
    return shape, dtype, int(np.prod(shape)) * dtype.itemsize


def stored(name: str, values: torch.Tensor, kind: str) -> np.ndarray:
    """`values` as the bytes of GGML type `kind`."""
    import gguf

    array = values.numpy()
    if kind == "Q8_0":
        return gguf.quants.quantize(array, gguf.GGMLQuantizationType.Q8_0)
    if kind == "F16":
        half = array.astype(np.float16)
        if not np.isfinite(half).all():
            raise ValueError(f"tensor {name} has values beyond float16's range (+-65504); export --type q8_0")
        return half
    return array.astype(np.float32)


def gguf_tensors(model, arch: Arch) -> list[Tensor]:
    """Every weight of `model` under its GGUF name, in state-dict order."""
    import gguf

    config = model.config
    names = gguf.get_tensor_name_map(arch.gguf_arch, config.num_hidden_layers)
    n_heads = config.num_attention_heads
    n_kv = getattr(config, "num_key_value_heads", None) or n_heads
    tied = bool(getattr(config, "tie_word_embeddings", False))
    out = []
    for hf_name, tensor in model.state_dict().items():
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue  # recomputed from the rope settings
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp falls back to token_embd
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise UnsupportedModelError(f"no GGUF name for tensor {hf_name!r} of {arch.gguf_arch.name.lower()}")
        heads = None
        if arch.interleave_qk and ".self_attn.q_proj." in hf_name:
            heads = n_heads
        elif arch.interleave_qk and ".self_attn.k_proj." in hf_name:
            heads = n_kv
        offset = arch.norm_offset if hf_name.endswith("norm.weight") else 0.0
        out.append(Tensor(name, tensor, heads, offset))
    return out


# ------------------------------------------------------------------------------------------- export


def write_hparams(writer, config, file_type, arch: Arch) -> dict[str, np.ndarray]:
    """The architecture's hyper-parameters; returns extra tensors the rope scaling needs."""
    for cap in ("final_logit_softcapping", "attn_logit_softcapping"):
        if getattr(config, cap, None):
            raise UnsupportedModelError(f"{cap} has no GGUF export here")
    if arch.sliding_window:
        writer.add_sliding_window(config.sliding_window)
    n_heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_heads
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(n_heads)
    writer.add_head_count_kv(getattr(config, "num_key_value_heads", None) or n_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_rope_dimension_count(head_dim)
    if head_dim != config.hidden_size // n_heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    rope = _rope(config)
    writer.add_rope_freq_base(float(rope["rope_theta"]))
    if rope["rope_type"] not in ROPE_SCALING:
        raise UnsupportedModelError(f"rope scaling {rope['rope_type']!r} has no GGUF export here "
                                    f"(supported: {', '.join(ROPE_SCALING)})")
    writer.add_file_type(file_type)
    return ROPE_SCALING[rope["rope_type"]](writer, rope, head_dim)


def write_general(writer, name: str, meta: dict) -> None:
    """`general.*`: the name, and what the model card knows (license, base model, languages, tags)."""
    writer.add_type("model")
    writer.add_name(name)
    if meta.get("license"):
        writer.add_license(meta["license"])
    if meta.get("base_model"):
        writer.add_base_model_count(1)
        writer.add_base_model_name(0, meta["base_model"])
    if meta.get("languages"):
        writer.add_languages(list(meta["languages"]))
    if meta.get("tags"):
        writer.add_tags(list(meta["tags"]))


def export_gguf(model_path: str | os.PathLike, out: str | os.PathLike, out_type: str = "f16", *,
                gguf_file: str | None = None, name: str | None = None, meta: dict | None = None,
                loaded=None) -> Path:
    """Write `model_path` (any form `langshift.models.load` takes) to the GGUF file `out`, atomically.
    `loaded`: an already loaded (model, tokenizer) to write instead of loading `model_path`."""
    import gguf

    from langshift import models

    if out_type not in OUT_TYPES:
        raise InputError("--type", f"must be one of {', '.join(OUT_TYPES)}, got {out_type!r}", field="type")
    out = Path(out)
    model, tokenizer = loaded or models.load(model_path, gguf_file, dtype="float32")
    arch = arch_of(model)  # before anything is written: an unsupported model fails fast
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with tempfile.TemporaryDirectory() as work:
            writer = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[arch.gguf_arch])
            write_general(writer, name or Path(str(model_path)).name, meta or {})
            extra = write_hparams(writer, model.config, gguf.LlamaFileType[OUT_TYPES[out_type][0]], arch)
            writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
            write_vocab(writer, tokenizer, model.config.vocab_size, Path(work))
            tensors = gguf_tensors(model, arch) + [Tensor(k, torch.from_numpy(v)) for k, v in extra.items()]
            # The header (names, shapes, types) first, then the data one tensor at a time.
            for t in tensors:
                kind = ggml_type(t.shape, out_type)
                shape, dtype, nbytes = tensor_info(t.shape, kind)
                writer.add_tensor_info(t.name, shape, dtype, nbytes,
                                       raw_dtype=gguf.GGMLQuantizationType[kind] if kind == "Q8_0" else None)
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_ti_data_to_file()
            for t in tensors:
                writer.write_tensor_data(stored(t.name, t.values(), ggml_type(t.shape, out_type)))
            writer.close()
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
