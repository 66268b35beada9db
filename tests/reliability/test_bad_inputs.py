"""Every command, given something wrong, says what and where in one line and writes nothing.

Each case builds its inputs in its own directory and runs `langshift.cli.app`; it must end with exit
code 2 (1 for a failed stage), exactly one `error:` line on stderr naming the file, line, field, flag
or URL at fault, no traceback, and no new file in that directory (a few cases may leave the resumable
caches they name). No case loads a model: the `model` directory below holds weights that do not load,
so a case that reached a model load would fail with the wrong message. A few cases also run as a
real process, to show that nothing prints a traceback outside the test runner either.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
import yaml
from fake_openai import FakeOpenAI
from typer.testing import CliRunner

from langshift.cli import app

DEMO = Path(__file__).parents[2] / "configs" / "demo.yaml"

# ------------------------------------------------------------------------------------------ inputs


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def jsonl(path: Path, rows: list[dict]) -> Path:
    return write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def english(d: Path, n: int = 3) -> Path:
    return jsonl(d / "en.jsonl", [{"id": f"r{i}", "en_prompt": f"What is item {i}?",
                                   "en_response": f"Item {i} is water."} for i in range(n)])


def english_source(d: Path, n: int = 3) -> Path:
    """A `jsonl:` source for `data english` (prompt/response rows)."""
    return jsonl(d / "source.jsonl", [{"id": f"s{i}", "prompt": f"What is item {i}?", "response": f"Item {i} is water."}
                                      for i in range(n)])


def records(d: Path, n: int = 3) -> Path:
    return jsonl(d / "records.jsonl", [{"id": f"r{i}", "lang": "sw", "en_prompt": f"What is {i}?",
                                        "en_response": f"It is {i}.", "tgt_prompt": f"Ni nini {i}?",
                                        "tgt_response": f"Ni {i}."} for i in range(n)])


def prompts(d: Path, ids=("p1", "p2")) -> Path:
    return jsonl(d / "prompts.jsonl", [{"id": i, "prompt": f"Habari {i}?"} for i in ids])


def responses(d: Path, name: str, ids=("q1", "q2")) -> Path:
    return jsonl(d / f"{name}.jsonl", [{"id": i, "prompt": f"Habari {i}?", "response": f"{name} {i}"} for i in ids])


def model_dir(d: Path) -> Path:
    """Looks like a model directory; its weights are not loadable, so loading it fails loudly."""
    write(d / "model" / "config.json", json.dumps({"model_type": "llama"}))
    write(d / "model" / "model.safetensors", b"not safetensors")
    return d / "model"


def run_config(d: Path, text: str | None = None, **changes) -> Path:
    """The demo config with `out` under `d` and dotted `changes`; or `text` as the whole file."""
    if text is not None:
        return write(d / "exp.yaml", text)
    raw = yaml.safe_load(DEMO.read_text())
    # One stage at a time, and a model that cannot load: a case that got past validation fails fast.
    raw.update(out=str(d / "run"), jobs=1, models=[{"name": "m", "model": str(model_dir(d))}])
    for dotted, value in changes.items():
        node, (*parents, last) = raw, dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return write(d / "exp.yaml", yaml.safe_dump(raw, allow_unicode=True))


def read_only_dir(d: Path) -> Path:
    (d / "ro").mkdir()
    (d / "ro").chmod(0o555)
    return d / "ro"


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"  # nothing listens once the socket closes


INVALID_UTF8 = b'{"id": "r0", "en_prompt": "caf\xe9", "en_response": "ok"}\n'

# ------------------------------------------------------------------------------------------ cases


@dataclass
class Case:
    build: Callable[[Path], tuple[list[str], list[str]]]  # dir -> (arguments, what the error line must name)
    code: int = 2
    leaves: tuple[str, ...] = ()  # files the failure may leave (resumable caches, stage specs); `*` spans '/'
    endpoint: Callable | None = None  # answer(request) of a loopback OpenAI-compatible server, passed as URL
    unprivileged: bool = False  # needs a user that permissions apply to (root writes in a read-only directory)
    slow: bool = False  # starts child processes


CASES: dict[str, Case] = {}


def case(name: str, **kw):
    def register(build):
        CASES[name] = Case(build, **kw)
        return build

    return register


# --- langshift run: the whole config is checked before the first stage


@case("run: YAML syntax error")
def _(d):
    cfg = run_config(d, "name: x\nmodels: [smollm2\nlanguages: [sw]\n")
    return ["run", str(cfg)], [f"{cfg}:", "invalid YAML"]


@case("run: config file missing")
def _(d):
    return ["run", str(d / "nope.yaml")], [str(d / "nope.yaml"), "not found"]


@case("run: config is not UTF-8")
def _(d):
    cfg = write(d / "exp.yaml", b"name: caf\xe9\n")
    return ["run", str(cfg)], [str(cfg), "UTF-8"]


@case("run: top level is a list")
def _(d):
    cfg = run_config(d, "- models\n- languages\n")
    return ["run", str(cfg)], [str(cfg), "mapping"]


@case("run: unknown key")
def _(d):
    cfg = run_config(d, modles=["smollm2"])
    return ["run", str(cfg)], [str(cfg), "field 'modles'", "unknown key"]


@case("run: seed is not a number")
def _(d):
    cfg = run_config(d, seed="abc")
    return ["run", str(cfg)], [str(cfg), "field 'seed'", "'abc'"]


@case("run: train section is a list")
def _(d):
    cfg = run_config(d, train=[1, 2])
    return ["run", str(cfg)], [str(cfg), "field 'train'"]


@case("run: data.val_size out of range")
def _(d):
    cfg = run_config(d, **{"data.val_size": 2})
    return ["run", str(cfg)], [str(cfg), "field 'data.val_size'", "less than 1"]


@case("run: eval.batch_size negative")
def _(d):
    cfg = run_config(d, **{"eval.batch_size": -1})
    return ["run", str(cfg)], [str(cfg), "field 'eval.batch_size'", "greater than or equal to 1"]


@case("run: train.max_steps 0")
def _(d):
    cfg = run_config(d, **{"train.max_steps": 0})
    return ["run", str(cfg)], [str(cfg), "field 'train.max_steps'"]


@case("run: unknown language")
def _(d):
    cfg = run_config(d, languages=["sw", "xx"])
    return ["run", str(cfg)], [str(cfg), "field 'languages[1]'", "xx"]


@case("run: local model path that does not exist")
def _(d):
    cfg = run_config(d, models=[{"name": "m", "model": str(d / "no" / "such-model")}])
    return ["run", str(cfg)], [str(cfg), "field 'models[0].model'", "no/such-model", "does not exist"]


@case("run: .gguf file that does not exist")
def _(d):
    cfg = run_config(d, models=["tiny.gguf"])
    return ["run", str(cfg)], [str(cfg), "field 'models[0].model'", "tiny.gguf"]


@case("run: English source file missing")
def _(d):
    cfg = run_config(d, **{"data.source": f"jsonl:{d / 'nope.jsonl'}"})
    return ["run", str(cfg)], [str(cfg), "field 'data.source'", "file not found", str(d / "nope.jsonl")]


@case("run: eval prompts file missing")
def _(d):
    cfg = run_config(d, **{"eval.prompts": str(d / "prompts.jsonl")})
    return ["run", str(cfg)], [str(cfg), "field 'eval.prompts'", "file not found"]


@case("run: --set without '='")
def _(d):
    return ["run", str(run_config(d)), "--set", "eval.limit"], ["--set", "KEY=VALUE", "eval.limit"]


@case("run: --set value is broken YAML")
def _(d):
    return ["run", str(run_config(d)), "--set", "languages=[sw"], ["--set", "languages", "YAML"]


@case("run: --set value of the wrong type")
def _(d):
    return ["run", str(run_config(d)), "--set", "seed=abc"], ["field 'seed'", "--set seed=abc"]


@case("run: --set into a value that is not a section")
def _(d):
    return ["run", str(run_config(d)), "--set", "seed.x=1"], ["--set", "'seed' is not a section"]


@case("run: --set of an unknown key")
def _(d):
    return ["run", str(run_config(d)), "--set", "eval.limt=3"], ["field 'eval.limt'", "unknown key"]


@case("run: --jobs 0")
def _(d):
    return ["run", str(run_config(d)), "--jobs", "0"], ["--jobs"]


@case("run: --quick without a quick section")
def _(d):
    cfg = run_config(d, quick={})
    return ["run", str(cfg), "--quick"], [str(cfg), "field 'quick'"]


@case("run: out is a file")
def _(d):
    occupied = write(d / "occupied", "")
    cfg = run_config(d, out=str(occupied))
    return ["run", str(cfg)], [str(occupied), "not a directory"]


@case("run: translator endpoint unreachable", code=2, leaves=("run/experiment.json", "run/data/*/spec.json",
                                                              "run/data/*/translation_cache.sqlite*"))
def _(d):
    cfg = run_config(d, **{"data.source": f"jsonl:{english_source(d)}", "data.translator": "openai",
                           "data.translator_options": {"base_url": closed_port_url(), "api_key_env": "",
                                                       "max_retries": 0, "model": "m"}})
    return ["run", str(cfg)], ["127.0.0.1", "failed after 1 attempts"]


@case("run: a stage that fails in its child process", code=1, slow=True,
      leaves=("run/experiment.json", "run/logs/*", "run/*/spec.json", "run/eval/*/responses.*.settings.json",
              "run/data/*"))  # the data stage beside it may finish (whole: stage.json comes last)
def _(d):
    """The base model's evaluation loads weights that do not load: its stage fails, the run says which (exit 1:
    the stage's own failure is in its log, whose end is shown below the one error line)."""
    cfg = run_config(d, jobs=2, **{"data.filters": {"detector": "none"}})  # the data stage beside it: quick
    return ["run", str(cfg)], ["stage eval m-sw-base", "failed; the end of", ".log"]


# --- langshift train


@case("train: --max-steps 0")
def _(d):
    return ["train", "--data", str(records(d)), "--max-steps", "0", "--out", str(d / "out")], ["field 'max_steps'"]


@case("train: --batch-size 0")
def _(d):
    return ["train", "--data", str(records(d)), "--batch-size", "0", "--out", str(d / "out")], ["field 'batch_size'"]


@case("train: --lr negative")
def _(d):
    return ["train", "--data", str(records(d)), "--lr", "-1", "--out", str(d / "out")], ["field 'lr'"]


@case("train: --lang xx")
def _(d):
    return ["train", "--data", str(records(d)), "--lang", "xx", "--out", str(d / "out")], ["field 'lang'", "xx"]


@case("train: --model is a path that does not exist")
def _(d):
    return (["train", "--data", str(records(d)), "--model", "./no/such-model", "--out", str(d / "out")],
            ["field 'model'", "./no/such-model"])


@case("train: --data missing")
def _(d):
    return ["train", "--data", str(d / "nope.jsonl"), "--out", str(d / "out")], [str(d / "nope.jsonl")]


@case("train: records with invalid UTF-8")
def _(d):
    data = write(d / "records.jsonl", records(d).read_bytes() + INVALID_UTF8)
    return ["train", "--data", str(data), "--out", str(d / "out")], [f"{data}:4:", "UTF-8"]


@case("train: duplicate record ids")
def _(d):
    data = records(d)
    write(data, data.read_bytes() + data.read_bytes().splitlines(keepends=True)[0])
    return ["train", "--data", str(data), "--out", str(d / "out")], [f"{data}:4:", "duplicate", "'r0'"]


@case("train: records file with no rows")
def _(d):
    data = write(d / "records.jsonl", "\n")
    return ["train", "--data", str(data), "--out", str(d / "out")], [str(data), "no records"]


@case("train: --out is a file")
def _(d):
    occupied = write(d / "occupied", "")
    return ["train", "--data", str(records(d)), "--out", str(occupied)], [str(occupied), "not a directory"]


@case("train: --out in a read-only directory", unprivileged=True)
def _(d):
    ro = read_only_dir(d)
    return ["train", "--data", str(records(d)), "--out", str(ro / "out")], [str(ro / "out"), "cannot write in"]


@case("train: --config with a YAML error")
def _(d):
    cfg = write(d / "train.yaml", "lr: [1\n")
    return ["train", "--config", str(cfg)], [f"{cfg}:", "invalid YAML"]


@case("train: --config with an unknown key")
def _(d):
    cfg = write(d / "train.yaml", "train:\n  lamda: 0.5\n")
    return ["train", "--config", str(cfg)], [str(cfg), "field 'lamda'", "unknown key"]


# --- langshift data english | translate | convert


@case("data english: --n 0")
def _(d):
    return (["data", "english", "--source", f"jsonl:{english_source(d)}", "--n", "0", "--out", str(d / "out.jsonl")],
            ["field 'n'"])


@case("data english: source file missing")
def _(d):
    return (["data", "english", "--source", f"jsonl:{d / 'nope.jsonl'}", "--out", str(d / "out.jsonl")],
            [str(d / "nope.jsonl"), "not found"])


@case("data english: unknown source kind")
def _(d):
    return ["data", "english", "--source", "reddit", "--out", str(d / "out.jsonl")], ["reddit", "unknown source"]


@case("data english: invalid UTF-8")
def _(d):
    src = write(d / "source.jsonl", english_source(d).read_bytes() + b'{"prompt": "caf\xe9", "response": "ok"}\n')
    return ["data", "english", "--source", f"jsonl:{src}", "--out", str(d / "out.jsonl")], [f"{src}:4:", "UTF-8"]


@case("data english: no rows")
def _(d):
    src = write(d / "en.jsonl", "")
    return ["data", "english", "--source", f"jsonl:{src}", "--out", str(d / "out.jsonl")], [str(src), "no usable"]


@case("data english: --out is a directory")
def _(d):
    (d / "outdir").mkdir()
    return (["data", "english", "--source", f"jsonl:{english_source(d)}", "--out", str(d / "outdir")],
            [str(d / "outdir"), "is a directory"])


@case("data translate: --lang xx (before any translator loads)")
def _(d):
    return (["data", "translate", "--in", str(english(d)), "--lang", "xx", "--out", str(d / "out")],
            ["field 'lang'", "'xx'"])


@case("data translate: --lang en")
def _(d):
    return ["data", "translate", "--in", str(english(d)), "--lang", "en", "--out", str(d / "out")], ["field 'lang'", "English"]


@case("data translate: --val-size 2")
def _(d):
    return (["data", "translate", "--in", str(english(d)), "--lang", "sw", "--val-size", "2", "--out", str(d / "out")],
            ["field 'val_size'"])


@case("data translate: --out is a read-only directory", unprivileged=True)
def _(d):
    ro = read_only_dir(d)
    return (["data", "translate", "--in", str(english(d)), "--lang", "sw", "--out", str(ro)],
            [str(ro), "cannot write in"])


@case("data translate: --batch-size 0")
def _(d):
    return (["data", "translate", "--in", str(english(d)), "--lang", "sw", "--batch-size", "0",
             "--out", str(d / "out")], ["field 'batch_size'"])


@case("data translate: --limit 0")
def _(d):
    return (["data", "translate", "--in", str(english(d)), "--lang", "sw", "--limit", "0", "--out", str(d / "out")],
            ["field 'limit'"])


@case("data translate: unknown translator")
def _(d):
    return (["data", "translate", "--in", str(english(d)), "--lang", "sw", "--translator", "deepl",
             "--out", str(d / "out")], ["field 'translator'", "deepl"])


@case("data translate: --in missing")
def _(d):
    return (["data", "translate", "--in", str(d / "nope.jsonl"), "--lang", "sw", "--out", str(d / "out")],
            [str(d / "nope.jsonl"), "not found"])


@case("data translate: duplicate ids")
def _(d):
    src = english(d)
    write(src, src.read_bytes() + src.read_bytes().splitlines(keepends=True)[1])
    return ["data", "translate", "--in", str(src), "--lang", "sw", "--out", str(d / "out")], [f"{src}:4:", "duplicate"]


@case("data translate: no rows")
def _(d):
    src = write(d / "en.jsonl", "\n\n")
    return ["data", "translate", "--in", str(src), "--lang", "sw", "--out", str(d / "out")], [str(src), "no rows"]


@case("data translate: --out is a file")
def _(d):
    occupied = write(d / "occupied", "")
    return (["data", "translate", "--in", str(english(d)), "--lang", "sw", "--out", str(occupied)],
            [str(occupied), "not a directory"])


ENDPOINT_ANSWERS = {
    "HTML": (200, "text/html", b"<html><body>Welcome to nginx!</body></html>"),
    "a JSON list": (200, "application/json", b"[1, 2]"),
    "nothing": (200, "application/json", b""),
}

for what, answer in ENDPOINT_ANSWERS.items():
    @case(f"data translate: endpoint answers {what}", endpoint=lambda request, answer=answer: answer,
          leaves=("out/translation_cache.sqlite*",))
    def _(d, what=what):
        return (["data", "translate", "--in", str(english(d)), "--lang", "sw", "--translator", "openai", "--model", "m",
                 "--api-key-env", "", "--detector", "none", "--out", str(d / "out"), "--base-url", "{URL}"],
                ["{URL}/chat/completions", {"HTML": "text/html", "a JSON list": "JSON list",
                                            "nothing": "empty body"}[what]])


@case("data convert: local model path that does not exist")
def _(d):
    return ["data", "convert", "--model", str(d / "no-model"), "--out", str(d / "ct2")], [str(d / "no-model")]


@case("data convert: unknown quantization")
def _(d):
    return (["data", "convert", "--model", str(model_dir(d)), "--quantization", "int3", "--out", str(d / "ct2")],
            ["field 'quantization'", "int3"])


# --- langshift eval run | belebele | mmmlu | generate | fidelity | alpaca


@case("eval run: --lang xx")
def _(d):
    return ["eval", "run", "--lang", "xx", "--out", str(d / "out")], ["field 'lang'", "xx"]


@case("eval run: --model is a path that does not exist")
def _(d):
    return ["eval", "run", "--lang", "sw", "--model", "~/no/such/model", "--out", str(d / "out")], ["field 'model'"]


@case("eval run: unknown task")
def _(d):
    return ["eval", "run", "--lang", "sw", "--tasks", "bleu", "--out", str(d / "out")], ["field 'tasks[0]'", "bleu"]


@case("eval run: --batch-size 0")
def _(d):
    return ["eval", "run", "--lang", "sw", "--batch-size", "0", "--out", str(d / "out")], ["field 'batch_size'"]


@case("eval run: --config missing")
def _(d):
    return ["eval", "run", "--config", str(d / "nope.yaml"), "--out", str(d / "out")], [str(d / "nope.yaml")]


@case("eval run: duplicate prompt ids")
def _(d):
    p = prompts(d, ids=("a", "b", "a"))
    return (["eval", "run", "--lang", "sw", "--model", str(model_dir(d)), "--tasks", "fidelity", "--prompts", str(p),
             "--out", str(d / "out")], [f"{p}:3:", "duplicate", "'a'"])


@case("eval run: prompts with invalid UTF-8")
def _(d):
    p = write(d / "prompts.jsonl", prompts(d).read_bytes() + b'{"id": "x", "prompt": "\xff"}\n')
    return (["eval", "run", "--lang", "sw", "--model", str(model_dir(d)), "--tasks", "fidelity", "--prompts", str(p),
             "--out", str(d / "out")], [f"{p}:3:", "UTF-8"])


@case("eval run: --out is a file")
def _(d):
    occupied = write(d / "occupied", "")
    return ["eval", "run", "--lang", "sw", "--out", str(occupied)], [str(occupied), "not a directory"]


@case("eval belebele: data file missing")
def _(d):
    return (["eval", "belebele", "--lang", "sw", "--model", str(model_dir(d)), "--data", str(d / "nope.jsonl"),
             "--out", str(d / "out")], [str(d / "nope.jsonl")])


@case("eval belebele: --limit 0")
def _(d):
    return ["eval", "belebele", "--lang", "sw", "--limit", "0", "--out", str(d / "out")], ["field 'limit'"]


@case("eval mmmlu: --retries -1")
def _(d):
    return ["eval", "mmmlu", "--lang", "sw", "--retries", "-1", "--out", str(d / "out")], ["field 'mmmlu_retries'"]


@case("eval mmmlu: --lang xx")
def _(d):
    return ["eval", "mmmlu", "--lang", "xx", "--out", str(d / "out")], ["field 'lang'"]


@case("eval generate: --max-new-tokens -5")
def _(d):
    return (["eval", "generate", "--prompts", str(prompts(d)), "--max-new-tokens", "-5", "--out", str(d / "r.jsonl")],
            ["field 'max_new_tokens'"])


@case("eval generate: --temperature -1")
def _(d):
    return (["eval", "generate", "--prompts", str(prompts(d)), "--temperature", "-1", "--out", str(d / "r.jsonl")],
            ["field 'temperature'"])


@case("eval generate: --top-p 2")
def _(d):
    return (["eval", "generate", "--prompts", str(prompts(d)), "--top-p", "2", "--out", str(d / "r.jsonl")],
            ["field 'top_p'"])


@case("eval generate: duplicate prompt ids")
def _(d):
    p = prompts(d, ids=("a", "b", "b"))
    return (["eval", "generate", "--prompts", str(p), "--model", str(model_dir(d)), "--out", str(d / "r.jsonl")],
            [f"{p}:3:", "duplicate", "'b'"])


@case("eval generate: prompts with no rows")
def _(d):
    p = write(d / "prompts.jsonl", "")
    return (["eval", "generate", "--prompts", str(p), "--model", str(model_dir(d)), "--out", str(d / "r.jsonl")],
            [str(p), "no prompts"])


@case("eval generate: --out is a directory")
def _(d):
    (d / "outdir").mkdir()
    return (["eval", "generate", "--prompts", str(prompts(d)), "--model", str(model_dir(d)), "--out", str(d / "outdir")],
            [str(d / "outdir"), "is a directory"])


@case("eval generate: --out in a read-only directory", unprivileged=True)
def _(d):
    ro = read_only_dir(d)
    return (["eval", "generate", "--prompts", str(prompts(d)), "--model", str(model_dir(d)), "--out",
             str(ro / "r.jsonl")], [str(ro / "r.jsonl"), "cannot write in"])


@case("eval generate: --model is a path that does not exist")
def _(d):
    return (["eval", "generate", "--prompts", str(prompts(d)), "--model", str(d / "gone.gguf"), "--out",
             str(d / "r.jsonl")], ["field 'model'", "gone.gguf"])


@case("eval fidelity: --lang xx")
def _(d):
    return (["eval", "fidelity", "--responses", str(responses(d, "a")), "--lang", "xx", "--out", str(d / "out")],
            ["field 'lang'", "'xx'"])


@case("eval fidelity: responses missing")
def _(d):
    return (["eval", "fidelity", "--responses", str(d / "nope.jsonl"), "--lang", "sw", "--out", str(d / "out")],
            [str(d / "nope.jsonl"), "not found"])


@case("eval fidelity: unknown backend")
def _(d):
    return (["eval", "fidelity", "--responses", str(responses(d, "a")), "--lang", "sw", "--detector", "fasttext",
             "--out", str(d / "out")], ["field 'detector'", "fasttext"])


@case("eval fidelity: unknown candidate language")
def _(d):
    return (["eval", "fidelity", "--responses", str(responses(d, "a")), "--lang", "sw", "--candidates", "en,xx",
             "--out", str(d / "out")], ["field 'candidates[1]'", "'xx'"])


@case("eval fidelity: duplicate response ids")
def _(d):
    r = responses(d, "a", ids=("q1", "q1"))
    return (["eval", "fidelity", "--responses", str(r), "--lang", "sw", "--out", str(d / "out")],
            [f"{r}:2:", "duplicate", "'q1'"])


@case("eval fidelity: --out is a file")
def _(d):
    occupied = write(d / "occupied", "")
    return (["eval", "fidelity", "--responses", str(responses(d, "a")), "--lang", "sw", "--out", str(occupied)],
            [str(occupied), "not a directory"])


@case("eval alpaca: --lang xx")
def _(d):
    return (["eval", "alpaca", "--a", str(responses(d, "a")), "--b", str(responses(d, "b")), "--lang", "xx",
             "--out", str(d / "out")], ["field 'lang'"])


@case("eval alpaca: --a missing")
def _(d):
    return (["eval", "alpaca", "--a", str(d / "nope.jsonl"), "--b", str(responses(d, "b")), "--lang", "sw",
             "--out", str(d / "out")], [str(d / "nope.jsonl")])


@case("eval alpaca: duplicate ids in --b")
def _(d):
    b = responses(d, "b", ids=("q1", "q2", "q1"))
    return (["eval", "alpaca", "--a", str(responses(d, "a")), "--b", str(b), "--lang", "sw", "--out", str(d / "out")],
            [f"{b}:3:", "duplicate", "'q1'"])


@case("eval alpaca: --concurrency 0")
def _(d):
    return (["eval", "alpaca", "--a", str(responses(d, "a")), "--b", str(responses(d, "b")), "--lang", "sw",
             "--concurrency", "0", "--out", str(d / "out")], ["field 'judge.concurrency'"])


for what, answer in ENDPOINT_ANSWERS.items():
    @case(f"eval alpaca: judge answers {what}", endpoint=lambda request, answer=answer: answer,
          leaves=("out/judge_cache.sqlite*",))
    def _(d, what=what):
        return (["eval", "alpaca", "--a", str(responses(d, "a")), "--b", str(responses(d, "b")), "--lang", "sw",
                 "--judge-api-key-env", "", "--out", str(d / "out"), "--judge-base-url", "{URL}"],
                ["{URL}/chat/completions"])


# --- langshift report | compare


@case("report: not a run directory")
def _(d):
    (d / "empty").mkdir()
    return ["report", str(d / "empty")], [str(d / "empty" / "results.json"), "no results.json"]


@case("report: results.json is not JSON")
def _(d):
    bad = write(d / "run" / "results.json", '{"rows": [\n')
    return ["report", str(d / "run")], [f"{bad}:", "invalid JSON"]


@case("report: --out is a file")
def _(d):
    write(d / "run" / "results.json", json.dumps({"experiment": "x", "rows": []}))
    occupied = write(d / "occupied", "")
    return ["report", str(d / "run"), "--out", str(occupied)], [str(occupied), "not a directory"]


@case("compare: a run with no finished evaluation")
def _(d):
    (d / "run").mkdir()
    return ["compare", str(d / "run"), "--a", "method=clo", "--b", "method=sft"], [str(d / "run"), "no finished"]


@case("compare: --resamples below its minimum")
def _(d):
    return ["compare", str(d / "a"), str(d / "b"), "--resamples", "5"], ["--resamples"]


@case("compare: --a without '='")
def _(d):
    write(d / "run" / "eval" / "x" / "spec.json", json.dumps({"facts": {"method": "clo"}}))
    write(d / "run" / "eval" / "x" / "stage.json", "{}")
    return ["compare", str(d / "run"), "--a", "clo", "--b", "method=sft"], ["--a", "KEY=VALUE"]


@case("compare: evaluation directory without results")
def _(d):
    (d / "a").mkdir()
    (d / "b").mkdir()
    return ["compare", str(d / "a"), str(d / "b")], [str(d / "a")]


# --- langshift chat | export | push


@case("chat: --temperature -1")
def _(d):
    return ["chat", str(model_dir(d)), "--temperature", "-1", "--prompt", "hi"], ["field 'temperature'"]


@case("chat: --top-p 0")
def _(d):
    return ["chat", str(model_dir(d)), "--top-p", "0", "--prompt", "hi"], ["field 'top_p'"]


@case("chat: model path that does not exist")
def _(d):
    return ["chat", str(d / "no-model"), "--prompt", "hi"], [str(d / "no-model"), "does not exist"]


@case("export: unknown --type")
def _(d):
    return ["export", str(model_dir(d)), "--gguf", str(d / "m.gguf"), "--type", "q4"], ["--type", "f16, q8_0"]


@case("export: model path that does not exist")
def _(d):
    return ["export", str(d / "no-model"), "--gguf", str(d / "m.gguf")], [str(d / "no-model"), "does not exist"]


@case("export: --gguf is a directory")
def _(d):
    (d / "out.gguf").mkdir()
    return ["export", str(model_dir(d)), "--gguf", str(d / "out.gguf")], [str(d / "out.gguf"), "is a directory"]


@case("push: --repo without an owner")
def _(d):
    return ["push", str(model_dir(d)), "--repo", "no-owner"], ["--repo", "OWNER/NAME"]


@case("push: not a model directory")
def _(d):
    (d / "empty").mkdir()
    return ["push", str(d / "empty"), "--repo", "me/model"], [str(d / "empty"), "config.json"]


@case("doctor: an unknown flag")
def _(d):
    return ["doctor", "--jsn"], ["--jsn"]


# ------------------------------------------------------------------------------------------ checks


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _error_lines(stderr: str) -> list[str]:
    return [line for line in re.split(r"[\r\n]", stderr) if line.startswith("error: ")]


def _check(name: str, code: int, stdout: str, stderr: str, says: list[str], new: set[str], leaves) -> None:
    errors = _error_lines(stderr)
    assert code == CASES[name].code, f"exit {code}\n{stdout}\n{stderr}"
    assert "Traceback" not in stdout + stderr, stderr
    assert len(errors) == 1, stderr
    for needle in says:
        assert needle in errors[0], f"{needle!r} not in {errors[0]!r}"
    half_written = {f for f in new if not any(fnmatchcase(f, g) for g in leaves)}
    assert not half_written, f"left behind: {sorted(half_written)}"


def _args(name: str, d: Path, url: str) -> tuple[list[str], list[str]]:
    args, says = CASES[name].build(d)
    return [a.replace("{URL}", url) for a in args], [s.replace("{URL}", url) for s in says]


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("LANGSHIFT_CACHE", "/nonexistent-langshift-cache")  # nothing is converted or cached
    monkeypatch.delenv("LANGSHIFT_TRACEBACK", raising=False)


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] if c.slow else []) for n, c in CASES.items()])
def test_bad_input_is_one_error_line_and_nothing_written(name, tmp_path, offline):
    c = CASES[name]
    if c.unprivileged and os.geteuid() == 0:
        pytest.skip("root may write in a read-only directory")
    with FakeOpenAI(c.endpoint) if c.endpoint else nullcontext() as server:
        args, says = _args(name, tmp_path, server.url if server else "")
        before = _files(tmp_path)
        result = CliRunner().invoke(app, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a bug: show its traceback
    _check(name, result.exit_code, result.stdout, result.stderr, says, _files(tmp_path) - before, c.leaves)


def _commands(group, prefix=()) -> set[str]:
    """Every command path of the app ("train", "data english", ...), found by walking its groups."""
    found = set()
    for name, command in group.commands.items():
        found |= _commands(command, (*prefix, name)) if hasattr(command, "commands") else {" ".join((*prefix, name))}
    return found


def test_every_command_has_cases():
    """A new command gets the boundary by being registered, and needs its own bad-input cases here."""
    import typer.main

    covered = {name.split(":")[0] for name in CASES}
    assert _commands(typer.main.get_command(app)) == covered and len(CASES) >= 40


IN_A_PROCESS = ["run: YAML syntax error", "data translate: --lang xx (before any translator loads)",
                "eval generate: --max-new-tokens -5"]


@pytest.mark.parametrize("name", IN_A_PROCESS)
def test_a_real_process_prints_no_traceback(name, tmp_path):
    args, says = _args(name, tmp_path, "")
    before = _files(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    env.pop("LANGSHIFT_TRACEBACK", None)
    done = subprocess.run([sys.executable, "-m", "langshift.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)
    _check(name, done.returncode, done.stdout, done.stderr, says, _files(tmp_path) - before, CASES[name].leaves)


# ------------------------------------------------------------------------------------------ the boundary


def _raised(fn) -> BaseException:
    try:
        fn()
    except BaseException as e:  # noqa: BLE001 -- what a command would let escape
        return e
    raise AssertionError("nothing raised")


def test_which_failures_are_expected_and_how_they_read(tmp_path):
    """Real failures of the libraries underneath, sorted as the boundary sorts them."""
    from pydantic import BaseModel

    from langshift.cli_support import expected_failure
    from langshift.experiment import StageFailed
    from langshift.files import InputError
    from langshift.llm_client import LLMError

    class Limits(BaseModel):
        batch_size: int

    expected = {
        "input": (InputError("a.jsonl", "empty", line=3, field="x"), "a.jsonl:3: field 'x': empty"),
        "pydantic, several lines": (_raised(lambda: Limits(batch_size="many")),
                                    "Limits: field 'batch_size': Input should be a valid integer"),
        "missing file": (_raised(lambda: open(tmp_path / "nope.txt")), f"{tmp_path / 'nope.txt'}: No such file"),
        "YAML": (_raised(lambda: yaml.safe_load("a: [1")), "expected ',' or ']'"),
        "endpoint gone": (LLMError("http://x/v1 failed after 6 attempts"), "http://x/v1 failed after 6 attempts"),
    }
    for what, (error, says) in expected.items():
        message, code = expected_failure(error)
        assert code == 2 and "\n" not in message and says in message, what
    stage = StageFailed("stage train x failed; the end of x.log:\nerror: in the child\nTraceback (most recent call last)")
    message, code = expected_failure(stage)
    assert code == 1 and message.splitlines()[1:] == ["  error: in the child", "  Traceback (most recent call last)"]
    for bug in (_raised(lambda: {}["key"]), _raised(lambda: None + 1), _raised(lambda: [].pop())):
        assert expected_failure(bug) is None  # a bug keeps its traceback


def test_a_bug_keeps_its_traceback_and_langshift_traceback_shows_expected_ones(tmp_path, monkeypatch):
    import langshift.report.cli as report_cli

    write(tmp_path / "run" / "results.json", json.dumps({"experiment": "x", "rows": []}))

    def read_run_with_a_bug(path):
        raise TypeError("a bug in reading a run")

    with monkeypatch.context() as patch:
        patch.setattr(report_cli, "read_run", read_run_with_a_bug)
        bug = CliRunner().invoke(app, ["report", str(tmp_path / "run")])
    assert isinstance(bug.exception, TypeError) and bug.exit_code == 1 and "error:" not in bug.stderr
    monkeypatch.setenv("LANGSHIFT_TRACEBACK", "1")
    shown = CliRunner().invoke(app, ["report", str(tmp_path / "missing")])
    assert type(shown.exception).__name__ == "InputError" and "no results.json" in str(shown.exception)
