"""An Ollama `Modelfile` next to an exported GGUF: `ollama create NAME -f clo-sw.Modelfile`.

Ollama's templates are Go templates, not the Jinja chat template stored in the GGUF, so the template
comes from a table of chat-format families recognised by their turn markers (`FAMILIES`). For any
other family TEMPLATE is left out and Ollama derives one from the GGUF's own chat template. A default
system message that the Jinja template inserts when none is given (SmolLM2's does) becomes SYSTEM, so
Ollama asks the model as training and evaluation did. Stops: the family's turn markers. Sampling: the
evaluation's (temperature 0.6, top-p 0.9; paper App. B).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from langshift.files import atomic_write_text


@dataclass(frozen=True)
class Family:
    marker: str  # text that identifies the family in a Jinja chat template
    template: str  # Ollama Go template
    stops: tuple[str, ...]
    default_system: str  # regex: the system message a template inserts by itself (group 1)


FAMILIES = {
    "chatml": Family(
        marker="<|im_start|>",
        template=(
            "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
            "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
            "<|im_start|>assistant\n"
        ),
        stops=("<|im_start|>", "<|im_end|>"),
        default_system=r"<\|im_start\|>system\n(.*?)<\|im_end\|>",
    ),
    "llama3": Family(
        marker="<|start_header_id|>",
        template=(
            "{{- if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
            "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>"
            "{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
        ),
        stops=("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
        default_system=r"<\|start_header_id\|>system<\|end_header_id\|>\n\n(.*?)<\|eot_id\|>",
    ),
    # Gemma's turns (models.FAMILY_TURNS): roles user/model; a system message leads the first user turn
    "gemma": Family(
        marker="<start_of_turn>",
        template=(
            "{{- range $i, $m := .Messages }}<start_of_turn>{{ if eq $m.Role \"assistant\" }}model{{ else }}user{{ end }}\n"
            "{{ if and (eq $i 0) $.System }}{{ $.System }}\n\n{{ end }}{{ $m.Content }}<end_of_turn>\n{{ end }}"
            "<start_of_turn>model\n"
        ),
        stops=("<start_of_turn>", "<end_of_turn>"),
        default_system=r"(?!)",  # Gemma's template writes no system message of its own
    ),
}

_PROBE = "\u2063LANGSHIFT_PROBE\u2063"


def family_of(chat_template: str | None) -> str | None:
    for name, family in FAMILIES.items():
        if chat_template and family.marker in chat_template:
            return name
    return None


def default_system(tokenizer, family: Family) -> str | None:
    """The system message the tokenizer's template writes when a conversation has none."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": _PROBE}], tokenize=False,
                                         add_generation_prompt=True)
    found = re.search(family.default_system, text[: text.index(_PROBE)], flags=re.S)
    return found.group(1) if found else None


def _quoted(text: str) -> str:
    return '"""' + text.replace('"""', '\\"\\"\\"') + '"""'


def render_modelfile(gguf_name: str, tokenizer, *, temperature: float = 0.6, top_p: float = 0.9) -> str:
    from langshift.models import chat_format

    template = getattr(tokenizer, "chat_template", None)
    name = family_of(template)
    lines = ["# Ollama: ollama create NAME -f <this file>; then ollama run NAME", f"FROM ./{gguf_name}", ""]
    if name is None:
        lines.append("# chat format not in langshift's table: Ollama derives the template from the GGUF")
        end = chat_format(tokenizer).end
        stops = (end,) if end else ()
    else:
        family = FAMILIES[name]
        lines.append(f"TEMPLATE {_quoted(family.template)}")
        system = default_system(tokenizer, family)
        if system:
            lines.append(f"SYSTEM {_quoted(system)}")
        stops = family.stops
    lines += [f'PARAMETER stop "{s}"' for s in stops]
    lines += [f"PARAMETER temperature {temperature}", f"PARAMETER top_p {top_p}", ""]
    return "\n".join(lines)


def write_modelfile(gguf_path: str | Path, tokenizer) -> Path:
    """`<stem>.Modelfile` next to `gguf_path`."""
    gguf_path = Path(gguf_path)
    return atomic_write_text(gguf_path.with_suffix(".Modelfile"), render_modelfile(gguf_path.name, tokenizer))
