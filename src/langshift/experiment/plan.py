"""The stages of an experiment: data -> train -> eval, each a directory named by what produced it.

A stage's directory is `<root>/<kind>/<label>-<hash of its inputs>`: its options and the keys of the
stages it reads. So a rerun finds what is done (`stage.json`), a changed setting reruns only what
depends on it, and an interrupted stage resumes in place.

A `Stage` is plain data: `spec` holds everything its runner needs (JSON), so any process, on this
machine or another, runs it from its directory alone (`run_stage_dir`).

    runs/<name>/data/<lang>-<key>/                              records.jsonl, dataset/, data_card.md
    runs/<name>/train/<model>-<lang>-<method>-<size>-<trainable>-<nll>[-sequence]-<key>/   model, metrics.jsonl
    runs/<name>/eval/<model>-<lang>-<method>-<size>-...-<key>/   results.json, responses, report.md
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from langshift.experiment.config import Experiment, ModelEntry
from langshift.experiment.rendezvous import machine_args
from langshift.files import file_hash, stable_hash, write_json
from langshift.train.objectives import METHODS, PIPELINES

EVAL_COST = 100  # an evaluation weighs about as much as training on 100 sequences (for ordering only)
SPEC = "spec.json"
DONE = "stage.json"


@dataclass
class Stage:
    kind: str  # data | evaldata | train | eval
    label: str
    inputs: dict  # everything that determines the output (hashed into the directory name)
    spec: dict  # what the stage's runner reads: its inputs plus the paths of the stages it reads
    needs: list[Stage] = field(default_factory=list)  # stages whose outputs this one reads
    cost: float = 1.0  # rough work estimate: with jobs > 1 the costliest ready stage starts first
    facts: dict = field(default_factory=dict)  # eval stages: what the report's rows say they measured

    def directory(self, root: Path) -> Path:
        return root / self.kind / f"{self.label}-{stable_hash(self.inputs, length=10)}"


def is_done(directory: Path) -> bool:
    return (directory / DONE).is_file()


# ------------------------------------------------------------------------------------------ planning


def _data_stage(exp: Experiment, lang: str) -> Stage:
    spec = {**exp.data.set_options(), "lang": lang, "seed": exp.seed}
    return Stage("data", lang, spec, {"data": spec})


def _eval_data_stage(exp: Experiment, lang: str) -> Stage | None:
    """The evaluation prompts translated into `lang`, when the config names a source that needs it."""
    from langshift.data.eval_prompts import SOURCES

    if exp.eval.prompts not in SOURCES:
        return None
    spec = {"source": exp.eval.prompts, "lang": lang, "translator": exp.eval.translator,
            "translator_options": exp.eval.translator_options, "limit": exp.eval.prompts_limit or exp.eval.limit}
    return Stage("evaldata", f"{exp.eval.prompts}-{lang}", spec, {"evaldata": spec})


def _train_stage(exp: Experiment, root: Path, model: ModelEntry, lang: str, data: Stage | list[Stage], method: str,
                 size: int | None, trainable: str, nll: str, seed: int, nll_reduction: str = "token") -> Stage:
    """A training stage; `data` a list of data stages (one per language, `lang` "sw,de") for one
    multilingual model, whose `size` is its records in all: size // languages from each."""
    several = isinstance(data, list)
    datas = data if several else [data]
    limit = size // len(datas) if size and several else size
    options = {**exp.train.set_options(), "method": method, "model": model.model, "gguf_file": model.gguf_file,
               "lang": lang, "limit": limit, "trainable": trainable, "nll": nll, "seed": seed}
    # Said by the language list; and on one language cl_negatives has no other target to reject, so
    # both stay out of a single-language stage's key (it is the same run, shared with other configs).
    options.pop("multilingual", None)
    cl_negatives = options.pop("cl_negatives", None)
    if several:
        options["multilingual"] = True
        if cl_negatives is not None:
            options["cl_negatives"] = cl_negatives
    # The default reduction stays out of the hashed inputs and the label, so runs planned before the
    # option existed keep their stage directories (and their finished work).
    options.pop("nll_reduction", None)
    parts = [model.name, lang.replace(",", "+"), method.replace("+", "_"), size or "all", trainable, nll]
    if nll_reduction != "token":
        options["nll_reduction"] = nll_reduction
        parts.append(nll_reduction)
    label = "-".join(str(p) for p in parts + ([f"s{seed}"] if exp.seeds else []))
    spec = {"train": options, "launcher": exp.launcher.model_dump(),
            **({"data_dirs": [str(d.directory(root)) for d in datas]} if several else {"data_dir": str(data.directory(root))})}
    sequences = sum(METHODS[m].seqs_per_unit * METHODS[m].units_per_record for m in PIPELINES[method])
    inputs = {"train": options, "data": [stable_hash(d.inputs) for d in datas] if several else stable_hash(data.inputs)}
    return Stage("train", label, inputs, spec, needs=datas, cost=(size or 10**5) * sequences)


def _eval_stage(exp: Experiment, lang: str, label: str, model_dir: str, gguf_file: str | None,
                produced_by: dict, baseline: Path | None, needs: list[Stage], facts: dict, seed: int,
                train_data: str | None = None, prompts: tuple[Stage, Path] | None = None) -> Stage:
    settings = exp.eval.set_options()
    for key in ("baseline", "translator", "translator_options"):  # the run's, not the evaluation's
        settings.pop(key, None)
    if prompts is not None:  # translated by an evaldata stage: read them from there
        settings["prompts"] = str(prompts[1] / "prompts.jsonl")
        needs = [*needs, prompts[0]]
    demo = exp.data.source == "demo"
    options = {"lang": lang, "tasks": list(exp.eval.tasks), "model_name": label, "seed": seed, **settings}
    if exp.seeds:
        options["seed"] = seed  # replicate seeds: sampling follows the training seed
    packaged = {}
    for key in ("belebele", "mmmlu"):  # the packaged demo sets stand in for the hub's with demo data
        if options.get(key, "demo" if demo else None) == "demo":
            from langshift.data.seed import demo_dir

            path = demo_dir() / f"{key}.jsonl"
            options[key] = str(path)
            packaged[key] = _packaged_identity(path)
    if options.get("prompts") == "demo":
        options["prompts"] = None  # the suite's default: the packaged demo prompts
    from langshift.eval.tasks import TASKS

    identity = {**options, **packaged, "tasks": [t for t in options["tasks"] if TASKS[t].stage_identity]}
    inputs = {"eval": {**identity, **({"prompts": stable_hash(prompts[0].inputs)} if prompts else {})},
              "model": produced_by, "baseline": str(baseline) if baseline else None}
    spec = {"eval": {**options, "model": model_dir, "gguf_file": gguf_file, "train_data": train_data},
            "baseline": str(baseline) if baseline is not None and options.get("judge") else None,
            "baseline_method": exp.eval.baseline}
    return Stage("eval", label, inputs, spec, needs=needs, cost=EVAL_COST, facts=facts)


def _packaged_identity(path: Path) -> str:
    """A packaged data file as a stage key holds it: by content, not by where langshift is installed (another
    checkout reuses the stage). Hashed once per file version, not once per evaluation stage."""
    stat = path.stat()
    return _content_identity(path, stat.st_mtime_ns, stat.st_size)


@functools.cache
def _content_identity(path: Path, mtime_ns: int, size: int) -> str:
    return f"langshift demo {path.name} {file_hash(path)}"


def training_seeds(exp: Experiment, lang: str | None = None) -> list[int]:
    """The replicate seeds (of `lang`, where `seeds_per_language` names it), or the one training seed
    (`train.seed` if given, else the run's `seed`)."""
    if exp.seeds:
        return list(exp.seeds_per_language.get(lang, exp.seeds))
    return [exp.train.seed if "seed" in exp.train.model_fields_set else exp.seed]


def plan(exp: Experiment, root: Path) -> list[Stage]:
    """Every stage in run order (the stages a stage reads come before it)."""
    stages: list[Stage] = []
    datas = {}
    for lang in exp.languages:
        data = datas[lang] = _data_stage(exp, lang)
        stages.append(data)
        train_data = str(data.directory(root) / "records.jsonl")
        prompts = None
        if evaldata := _eval_data_stage(exp, lang):
            stages.append(evaldata)
            prompts = (evaldata, evaldata.directory(root))
        for model in exp.models:
            base_facts = {"model": model.name, "lang": lang, "method": "base", "size": None, "trainable": None,
                          "nll": None, "nll_reduction": None}
            stages.append(_eval_stage(exp, lang, f"{model.name}-{lang}-base", model.model, model.gguf_file,
                                      {"base": model.model, "gguf": model.gguf_file}, None, [], base_facts, exp.seed,
                                      prompts=prompts))
            if False not in exp.multilingual_options:
                continue
            for seed in training_seeds(exp, lang):
                trained = [(_train_stage(exp, root, model, lang, data, *variant[:4], seed, variant[4]), facts)
                           for variant, facts in _variants(exp, base_facts, seed)]
                stages += [t for t, _ in trained]
                stages += _trained_evals(exp, root, lang, trained, seed, train_data, prompts)
    if True in exp.multilingual_options:
        stages += _multilingual(exp, root, [datas[lang] for lang in exp.languages])
    return stages


def _variants(exp: Experiment, base_facts: dict, seed: int):
    """(method, size, trainable, nll, reduction) of every training run of one model and language(s), with
    its report facts."""
    reductions = exp.ablations.nll_reduction or [exp.train.nll_reduction]
    for method, size, trainable, nll, reduction in itertools.product(
            exp.methods, exp.sizes, exp.ablations.trainable, exp.ablations.nll, reductions):
        if nll != "target" and method != "clo":
            continue  # the NLL ablation is CLO's (Table 5)
        if reduction != "token" and not has_nll(method):
            continue  # DPO's loss has no NLL term: a reduction would train the same model twice
        facts = {**base_facts, "method": method, "size": size, "trainable": trainable, "nll": nll,
                 "nll_reduction": reduction, **({"seed": seed} if exp.seeds else {})}
        yield (method, size, trainable, nll, reduction), facts


def _multilingual(exp: Experiment, root: Path, datas: list[Stage]) -> list[Stage]:
    """One model per (model, method, size, variant, seed) on the union of the languages' data (`size` is
    its records in all, split evenly over the languages, so it takes as many optimizer steps as a
    single-language model of that size), evaluated in every language and English in one stage.

    Its report facts: `lang` = the first language (whose held-out pairs its English rows use) and
    `trained_langs` = "sw+de"; the rows of each trained language carry that language (report/rows.py)."""
    langs = ",".join(exp.languages)
    trained_langs = "+".join(exp.languages)
    train_data = ",".join(str(d.directory(root) / "records.jsonl") for d in datas)
    stages: list[Stage] = []
    for model in exp.models:
        base_facts = {"model": model.name, "lang": exp.languages[0], "method": "base", "size": None,
                      "trainable": None, "nll": None, "nll_reduction": None, "trained_langs": trained_langs}
        for seed in training_seeds(exp):
            trained = [(_train_stage(exp, root, model, langs, datas, *variant[:4], seed, variant[4]), facts)
                       for variant, facts in _variants(exp, base_facts, seed)]
            stages += [t for t, _ in trained]
            stages += _trained_evals(exp, root, langs, trained, seed, train_data, None)
    return stages


def has_nll(method: str) -> bool:
    """Whether a method's (or pipeline's) training loss has an NLL term: every one but plain DPO."""
    return any(METHODS[m].has_nll for m in PIPELINES[method])


def _trained_evals(exp: Experiment, root: Path, lang: str, trained: list[tuple[Stage, dict]], seed: int,
                   train_data: str, prompts: tuple[Stage, Path] | None) -> list[Stage]:
    """An eval stage per trained model; with a judge, every model is judged against the baseline's."""
    baseline = _baseline(exp, trained)
    evals, baseline_eval = [], None
    for t, facts in sorted(trained, key=lambda tf: tf[0] is not baseline):  # the baseline first
        judged_against = None if t is baseline or baseline_eval is None else baseline_eval
        ev = _eval_stage(exp, lang, t.label, str(t.directory(root)), None, {"train": stable_hash(t.inputs)},
                         judged_against.directory(root) if judged_against else None,
                         [t, *([judged_against] if judged_against else [])], facts, seed, train_data, prompts)
        if t is baseline:
            baseline_eval = ev
        evals.append(ev)
    return evals


def _baseline(exp: Experiment, trained: list[tuple[Stage, dict]]) -> Stage | None:
    """The pairwise judge compares against SFT at the largest size (paper §4.2 and Figure 3)."""
    from langshift.eval.tasks import TASKS

    if not exp.eval.judge or not any(TASKS[t].needs_judge for t in exp.eval.tasks):
        return None
    candidates = [(t, f) for t, f in trained if f["method"] == exp.eval.baseline and f["trainable"] == "attention"]
    # under an NLL-reduction ablation, the judge's baseline is the train section's reduction when there is one
    candidates = [tf for tf in candidates if tf[1]["nll_reduction"] == exp.train.nll_reduction] or candidates
    return max(candidates, key=lambda tf: tf[1]["size"] or 10**9)[0] if candidates else None


# ------------------------------------------------------------------------------------------ running


def run_data(spec: dict, out: Path) -> None:
    from langshift.data.build import build_dataset
    from langshift.data.english import load_english
    from langshift.data.seed import demo_english
    from langshift.data.translators import make_translator

    data, lang = spec["data"], spec["data"]["lang"]
    if data["source"] == "demo":
        rows, backend = demo_english(lang), "precomputed"
    else:
        rows, backend = load_english(data["source"], data.get("n")), data.get("translator", "hf")
    translator = make_translator(backend, **(data.get("translator_options") or {}))
    from langshift.data.filters import FilterConfig

    build_dataset(rows, lang, translator, out, val_size=data.get("val_size", 0.05), seed=data["seed"],
                  keep_filtered=data.get("keep_filtered", False), filter_config=FilterConfig(**data.get("filters", {})))


def run_eval_data(spec: dict, out: Path) -> None:
    from langshift.data.eval_prompts import build_eval_prompts
    from langshift.data.translators import make_translator

    d = spec["evaldata"]
    translator = make_translator(d["translator"], **(d.get("translator_options") or {}))
    build_eval_prompts(d["source"], d["lang"], translator, out, limit=d.get("limit"))


def run_train(spec: dict, out: Path) -> None:
    from langshift.train.config import TrainConfig

    dirs = spec.get("data_dirs") or [spec["data_dir"]]  # several: one per language of a multilingual model
    cfg = TrainConfig.from_dict({**spec["train"], "data": ",".join(str(Path(d) / "records.jsonl") for d in dirs), "out": str(out),
                                 "resume": (out / "checkpoints").is_dir()})
    if spec["launcher"]["kind"] == "accelerate":
        _launch_accelerate(spec["launcher"], cfg, out)
    else:
        from langshift.train.recipe import train

        train(cfg)


def _launch_accelerate(launcher: dict, cfg, out: Path) -> None:
    """Multi-GPU training: the same `langshift train` under `accelerate launch` (DDP, FSDP, DeepSpeed)."""
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "train.yaml"
    cfg_path.write_text(yaml.safe_dump({"train": cfg.to_dict()}, sort_keys=False, allow_unicode=True))
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if launcher.get("config_file"):
        cmd += ["--config_file", str(launcher["config_file"])]
    if launcher.get("num_processes"):
        cmd += ["--num_processes", str(launcher["num_processes"])]
    cmd += map(str, launcher.get("args", []))
    cmd += machine_args(os.environ, given=cmd)  # several nodes: each one's rank and the rendezvous (SLURM)
    cmd += ["-m", "langshift.cli", "train", "--config", str(cfg_path)]
    subprocess.run(cmd, check=True)


def run_eval(spec: dict, out: Path) -> None:
    from langshift.eval.suite import evaluate

    cfg = {**spec["eval"], "out": str(out)}
    if spec.get("baseline"):
        cfg["baseline_responses"], cfg["baseline_name"] = spec["baseline"], Path(spec["baseline"]).name
    evaluate(cfg)


RUNNERS = {"data": run_data, "evaldata": run_eval_data, "train": run_train, "eval": run_eval}


def write_spec(stage: Stage, root: Path) -> Path:
    """Put the stage's spec in its directory, so that any process can run it from there."""
    out = stage.directory(root)
    write_json(out / SPEC, {"kind": stage.kind, "label": stage.label, "inputs": stage.inputs, "spec": stage.spec,
                            "facts": stage.facts})
    return out


def run_stage_dir(out: Path) -> None:
    """Run the stage whose spec is in `out`, then mark it done (`stage.json`)."""
    out = Path(out)
    stage = json.loads((out / SPEC).read_text(encoding="utf-8"))
    t0 = time.time()
    RUNNERS[stage["kind"]](stage["spec"], out)
    write_json(out / DONE, {"kind": stage["kind"], "label": stage["label"], "inputs": stage["inputs"],
                            "seconds": round(time.time() - t0, 1), "finished": time.time()})
