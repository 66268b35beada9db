"""`langshift run CONFIG.yaml`: one experiment, data -> train -> eval -> report.

Every stage's output directory is named by the hash of everything that produced it (its options and
the keys of the stages it reads), and a finished stage leaves `stage.json` there. So a rerun skips
what is done, a changed setting reruns only what depends on it, and an interrupted run resumes:
training from its last checkpoint, generation from the responses already on disk.

    runs/<name>/data/<lang>-<key>/            records.jsonl, dataset/, data_card.md
    runs/<name>/train/<model>-<lang>-<method>-<size>-<key>/   model, metrics.jsonl, config.yaml
    runs/<name>/eval/<model>-<lang>-<method>-<size>-<key>/    results.json, responses, report.md
    runs/<name>/results.json, report.md, *.png                 the merged report

With `jobs: N` (or `--jobs N`) up to N stages run at once, each in a child process, as soon as the
stages they read are done; each child's output goes to runs/<name>/logs/.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import typer
import yaml
from tqdm.auto import tqdm

from langshift.files import InputError, stable_hash, write_json
from langshift.languages import canonical_code
from langshift.train.config import TrainConfig
from langshift.train.objectives import METHODS, PIPELINES

TOP_KEYS = {"name", "out", "models", "languages", "data", "methods", "sizes", "ablations", "train", "eval",
            "launcher", "quick", "seed", "jobs"}
DATA_KEYS = {"source", "n", "translator", "translator_options", "val_size", "keep_filtered"}
EVAL_KEYS = {"tasks", "prompts", "belebele", "mmmlu", "limit", "mmmlu_sample", "max_new_tokens",
             "mmmlu_max_new_tokens", "mmmlu_retries", "batch_size", "judge", "baseline", "same_language_system",
             "generation_backend", "base_model"}
ABLATION_KEYS = {"trainable", "nll"}
LAUNCHER_KEYS = {"kind", "config_file", "num_processes", "args"}
TASKS = {"fidelity", "belebele", "mmmlu", "alpaca"}
EVAL_COST = 100  # an evaluation weighs about as much as training on 100 sequences (for ordering only)


@dataclass
class ModelEntry:
    name: str
    model: str
    gguf_file: str | None = None


@dataclass
class Experiment:
    name: str
    out: str
    models: list[ModelEntry]
    languages: list[str]
    data: dict
    methods: list[str]
    sizes: list[int | None]
    ablations: dict
    train: dict
    eval: dict
    launcher: dict = field(default_factory=lambda: {"kind": "python"})
    seed: int = 0
    jobs: int = 1  # stages run at once, each in its own process (CPU cores or GPUs shared out)


# ------------------------------------------------------------------------------------------- config


def _unknown(section: dict, known: set, where: str, source: str) -> None:
    for key in section:
        if key not in known:
            raise InputError(source, f"unknown key (known: {', '.join(sorted(known))})", field=f"{where}{key}")


def _set_dotted(d: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for p in parents:
        d = d.setdefault(p, {})
    d[last] = value


def load_experiment(path: str | Path, *, quick: bool = False, overrides: list[str] = ()) -> Experiment:
    """Read and validate the whole config before any stage runs; errors name the file and key."""
    source = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise InputError(source, "config file not found") from None
    except yaml.YAMLError as e:
        raise InputError(source, f"invalid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise InputError(source, "expected a mapping at the top level")
    _unknown(raw, TOP_KEYS, "", source)
    if quick:
        if "quick" not in raw:
            raise InputError(source, "--quick needs a 'quick' section of overrides", field="quick")
        for dotted, value in raw["quick"].items():
            _set_dotted(raw, dotted, value)
    for item in overrides:
        dotted, sep, value = item.partition("=")
        if not sep:
            raise InputError("--set", f"expected KEY=VALUE, got {item!r}")
        _set_dotted(raw, dotted.strip(), yaml.safe_load(value))
    _unknown(raw, TOP_KEYS, "", source)
    return _validate(raw, source)


def _validate(raw: dict, source: str) -> Experiment:
    def need(key, kind, where=""):
        if key not in raw:
            raise InputError(source, "missing", field=where + key)
        if not isinstance(raw[key], kind):
            raise InputError(source, f"expected {getattr(kind, '__name__', kind)}", field=where + key)
        return raw[key]

    models = []
    for i, m in enumerate(need("models", list)):
        m = {"name": Path(str(m)).name if not str(m).endswith(".gguf") else Path(str(m)).stem, "model": str(m)} \
            if isinstance(m, str) else m
        if not isinstance(m, dict) or "model" not in m:
            raise InputError(source, "each model is a string or {name, model, gguf_file}", field=f"models[{i}]")
        _unknown(m, {"name", "model", "gguf_file"}, f"models[{i}].", source)
        models.append(ModelEntry(m.get("name") or Path(m["model"]).name, str(m["model"]), m.get("gguf_file")))
    languages = []
    for i, code in enumerate(need("languages", list)):
        try:
            languages.append(canonical_code(code))
        except ValueError as e:
            raise InputError(source, str(e), field=f"languages[{i}]") from None
    methods = need("methods", list)
    for i, m in enumerate(methods):
        if m not in PIPELINES:
            raise InputError(source, f"unknown method {m!r} (one of {sorted(PIPELINES)})", field=f"methods[{i}]")
    data = need("data", dict)
    _unknown(data, DATA_KEYS, "data.", source)
    if "source" not in data:
        raise InputError(source, "missing", field="data.source")
    sizes = raw.get("sizes") or [None]
    for i, s in enumerate(sizes):
        if s is not None and (not isinstance(s, int) or s < 1):
            raise InputError(source, "a data size is a positive integer (or null for all)", field=f"sizes[{i}]")
    ablations = raw.get("ablations") or {}
    _unknown(ablations, ABLATION_KEYS, "ablations.", source)
    ablations = {"trainable": ablations.get("trainable", ["attention"]), "nll": ablations.get("nll", ["target"])}
    train = raw.get("train") or {}
    try:  # every training option is checked now, not when its stage comes
        TrainConfig.from_dict({**train, "data": "x"}, source=source).validate()
    except InputError as e:
        raise InputError(source, e.message, field=f"train.{e.field}") from None
    for value in ablations["trainable"]:
        TrainConfig(trainable=value, data="x").validate()
    ev = raw.get("eval") or {}
    _unknown(ev, EVAL_KEYS, "eval.", source)
    for i, t in enumerate(ev.get("tasks", ["fidelity"])):
        if t not in TASKS:
            raise InputError(source, f"unknown task {t!r} (one of {sorted(TASKS)})", field=f"eval.tasks[{i}]")
    launcher = raw.get("launcher") or {"kind": "python"}
    _unknown(launcher, LAUNCHER_KEYS, "launcher.", source)
    if launcher.get("kind", "python") not in ("python", "accelerate"):
        raise InputError(source, "'python' or 'accelerate'", field="launcher.kind")
    jobs = raw.get("jobs", 1)
    if not isinstance(jobs, int) or jobs < 1:
        raise InputError(source, "a positive integer", field="jobs")
    if jobs > 1 and launcher.get("kind", "python") == "accelerate":
        raise InputError(source, "jobs > 1 runs one stage per process; with launcher 'accelerate' use 1",
                         field="jobs")
    name = raw.get("name") or Path(source).stem
    return Experiment(name=name, out=raw.get("out") or f"runs/{name}", models=models, languages=languages,
                      data=data, methods=methods, sizes=sizes, ablations=ablations, train=train, eval=ev,
                      launcher=launcher, seed=int(raw.get("seed", 0)), jobs=jobs)


# ------------------------------------------------------------------------------------------- stages


@dataclass
class Stage:
    kind: str  # data | train | eval
    label: str
    inputs: dict  # everything that determines the output (hashed into the directory name)
    run: object  # callable(out_dir) -> None
    needs: list = field(default_factory=list)  # stages whose outputs this one reads
    cost: float = 1.0  # rough work estimate: with jobs > 1 the longest ready stage starts first

    def directory(self, root: Path) -> Path:
        return root / self.kind / f"{self.label}-{stable_hash(self.inputs, length=10)}"


def _done(path: Path) -> bool:
    return (path / "stage.json").is_file()


def _data_stage(exp: Experiment, lang: str) -> Stage:
    spec = {**exp.data, "lang": lang, "seed": exp.seed}

    def run(out: Path):
        from langshift.data.build import build_dataset
        from langshift.data.english import load_english
        from langshift.data.seed import demo_english
        from langshift.data.translators import make_translator

        if spec["source"] == "demo":
            rows, backend = demo_english(lang), "precomputed"
        else:
            rows, backend = load_english(spec["source"], spec.get("n")), spec.get("translator", "hf")
        translator = make_translator(backend, **(spec.get("translator_options") or {}))
        build_dataset(rows, lang, translator, out, val_size=spec.get("val_size", 0.05), seed=exp.seed,
                      keep_filtered=spec.get("keep_filtered", False))

    return Stage("data", lang, spec, run)


def _train_stage(exp: Experiment, model: ModelEntry, lang: str, data: Stage, data_dir: Path, method: str,
                 size: int | None, trainable: str, nll: str) -> Stage:
    options = {**exp.train, "method": method, "model": model.model, "gguf_file": model.gguf_file, "lang": lang,
               "limit": size, "trainable": trainable, "nll": nll, "seed": exp.train.get("seed", exp.seed)}
    inputs = {"train": options, "data": stable_hash(data.inputs)}
    label = "-".join(str(p) for p in (model.name, lang, method.replace("+", "_"), size or "all", trainable, nll))

    def run(out: Path):
        cfg = TrainConfig.from_dict({**options, "data": str(data_dir / "dataset"), "out": str(out),
                                     "resume": (out / "checkpoints").is_dir()})
        if exp.launcher.get("kind", "python") == "accelerate":
            _launch_accelerate(exp.launcher, cfg, out)
        else:
            from langshift.train.recipe import train

            train(cfg)

    sequences = sum(METHODS[m].seqs_per_unit * METHODS[m].units_per_record for m in PIPELINES[method])
    return Stage("train", label, inputs, run, needs=[data], cost=(size or 10**5) * sequences)


def _launch_accelerate(launcher: dict, cfg: TrainConfig, out: Path) -> None:
    """Multi-GPU training: the same `langshift train` under `accelerate launch` (DDP, FSDP, DeepSpeed)."""
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "train.yaml"
    cfg_path.write_text(yaml.safe_dump({"train": cfg.to_dict()}, sort_keys=False, allow_unicode=True))
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if launcher.get("config_file"):
        cmd += ["--config_file", str(launcher["config_file"])]
    if launcher.get("num_processes"):
        cmd += ["--num_processes", str(launcher["num_processes"])]
    cmd += [*map(str, launcher.get("args", [])), "-m", "langshift.cli", "train", "--config", str(cfg_path)]
    subprocess.run(cmd, check=True)


def _eval_stage(exp: Experiment, lang: str, label: str, model_dir: str, gguf_file: str | None,
                produced_by: dict, baseline: Path | None, needs: list[Stage]) -> Stage:
    ev = {k: v for k, v in exp.eval.items() if k not in ("baseline", "base_model")}
    demo = exp.data["source"] == "demo"
    options = {
        "lang": lang, "tasks": list(ev.pop("tasks", ["fidelity"])), "model_name": label, "seed": exp.seed,
        "prompts": ev.pop("prompts", None),
        "belebele": ev.pop("belebele", "demo" if demo else "facebook/belebele"),
        "mmmlu": ev.pop("mmmlu", "demo" if demo else "openai/MMMLU"), **ev,
    }
    for key in ("belebele", "mmmlu"):  # the packaged demo sets
        if options[key] == "demo":
            from langshift.data.seed import demo_dir

            options[key] = str(demo_dir() / f"{key}.jsonl")
    if options["prompts"] == "demo":
        options["prompts"] = None  # the suite's default: the packaged demo prompts
    inputs = {"eval": options, "model": produced_by, "baseline": str(baseline) if baseline else None}

    def run(out: Path):
        from langshift.eval.suite import evaluate

        cfg = {**options, "model": model_dir, "gguf_file": gguf_file, "out": str(out)}
        if baseline is not None and options.get("judge"):
            cfg["baseline_responses"], cfg["baseline_name"] = str(baseline), baseline.name
        evaluate(cfg)

    return Stage("eval", label, inputs, run, needs=needs, cost=EVAL_COST)


def plan(exp: Experiment, root: Path) -> list[tuple[Stage, dict]]:
    """All stages in run order, each with the facts the report needs about it."""
    stages: list[tuple[Stage, dict]] = []
    for lang in exp.languages:
        data = _data_stage(exp, lang)
        stages.append((data, {}))
        for model in exp.models:
            base_facts = {"model": model.name, "lang": lang, "method": "base", "size": None, "trainable": None,
                          "nll": None}
            stages.append((_eval_stage(exp, lang, f"{model.name}-{lang}-base", model.model, model.gguf_file,
                                       {"base": model.model, "gguf": model.gguf_file}, None, []), base_facts))
            trained = []
            for method, size, trainable, nll in itertools.product(exp.methods, exp.sizes, exp.ablations["trainable"],
                                                                  exp.ablations["nll"]):
                if nll != "target" and method != "clo":
                    continue  # the NLL ablation is CLO's (Table 5)
                facts = {**base_facts, "method": method, "size": size, "trainable": trainable, "nll": nll}
                trained.append((_train_stage(exp, model, lang, data, data.directory(root), method, size, trainable,
                                             nll), facts))
            stages += trained
            baseline = _baseline(exp, trained)
            evals, baseline_eval = [], None
            for t, facts in sorted(trained, key=lambda tf: tf[0] is not baseline):  # the baseline first
                judged_against = None if t is baseline or baseline_eval is None else baseline_eval
                ev = _eval_stage(exp, lang, t.label, str(t.directory(root)), None, {"train": stable_hash(t.inputs)},
                                 judged_against.directory(root) if judged_against else None,
                                 [t, *([judged_against] if judged_against else [])])
                if t is baseline:
                    baseline_eval = ev
                evals.append((ev, facts))
            stages += evals
    return stages


def _baseline(exp: Experiment, trained: list[tuple[Stage, dict]]) -> Stage | None:
    """The pairwise judge compares against SFT at the largest size (paper §4.2 and Figure 3)."""
    if "alpaca" not in exp.eval.get("tasks", []) or not exp.eval.get("judge"):
        return None
    want = exp.eval.get("baseline", "sft")
    candidates = [(t, f) for t, f in trained if f["method"] == want and f["trainable"] == "attention"]
    return max(candidates, key=lambda tf: tf[1]["size"] or 10**9)[0] if candidates else None


# ------------------------------------------------------------------------------------------- rows


METRICS = {"fidelity": ("response_pass_rate", "line_pass_rate"), "belebele": ("accuracy",),
           "mmmlu": ("accuracy",), "alpaca": ("win_rate",)}


def result_rows(results: dict, facts: dict, target: str) -> list[dict]:
    """Flatten an evaluation's results.json into the report's rows (one number each)."""
    rows = []
    for task, metrics in METRICS.items():
        for lang, r in (results.get(task) or {}).items():
            if not isinstance(r, dict):
                continue
            for metric in metrics:
                value = r.get(metric)
                if isinstance(value, dict):  # {"value"/"mean", "stderr", "n"} shapes
                    stderr, n, value = value.get("stderr"), value.get("n"), value.get("value", value.get("mean"))
                else:
                    stderr, n = r.get(f"{metric}_stderr", r.get("stderr")), r.get(f"{metric}_n", r.get("n"))
                if value is None:
                    continue
                row = {**facts, "task": task, "eval_lang": "en" if lang == "en" and target != "en" else "target",
                       "metric": metric, "value": float(value), "stderr": stderr, "n": n}
                if task == "alpaca":
                    row["baseline"] = r.get("baseline", "sft")
                rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------- run


def run_experiment(exp: Experiment, *, progress: bool = True) -> Path:
    root = Path(exp.out)
    root.mkdir(parents=True, exist_ok=True)
    stages = plan(exp, root)
    write_json(root / "experiment.json", {"experiment": dataclasses.asdict(exp), "stages": [
        {"kind": s.kind, "label": s.label, "dir": str(s.directory(root)), "done": _done(s.directory(root))}
        for s, _ in stages]})
    todo = [s for s, _ in stages if not _done(s.directory(root))]
    bar = tqdm(total=len(stages), initial=len(stages) - len(todo), desc=exp.name, unit="stage", disable=not progress,
               position=0, leave=True)
    if exp.jobs > 1 and len(todo) > 1:
        _run_parallel(todo, root, exp.jobs, bar)
    for stage in todo:
        if not _done(stage.directory(root)):
            bar.set_postfix_str(f"{stage.kind} {stage.label}")
            tqdm.write(f"[langshift run] {stage.kind}: {stage.label} -> {stage.directory(root)}")
            _execute(stage, root)
            bar.update(1)
    bar.close()
    rows = []
    for stage, facts in stages:
        if stage.kind == "eval":
            rows += result_rows(_read_json(stage.directory(root) / "results.json"), facts, facts["lang"])
    write_json(root / "results.json", {"experiment": exp.name, "rows": rows})
    from langshift.report import write_report

    write_report(rows, root, title=f"langshift experiment: {exp.name}")
    return root


def _execute(stage: Stage, root: Path) -> None:
    out = stage.directory(root)
    t0 = time.time()
    stage.run(out)
    write_json(out / "stage.json", {"kind": stage.kind, "label": stage.label, "inputs": stage.inputs,
                                    "seconds": round(time.time() - t0, 1), "finished": time.time()})


TQDM_LINE = re.compile(r"(?:(?P<desc>[^|]*?):)?\s*\d+%\|[^|]*\|\s*(?P<count>\d+/\d+)\s*\[[^<\]]*<(?P<eta>[^,\]]*)")


def _last_progress(log: Path) -> str:
    """The item progress a child last printed ("generate 16/24 ETA 00:08"), for the parent's view."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, log.stat().st_size - 600))
            tail = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in re.split(r"[\r\n]", tail) if line.strip()]
    for line in reversed(lines):
        if m := TQDM_LINE.search(line):
            return f"{(m['desc'] or 'steps').strip()} {m['count']} ETA {m['eta'].strip()}"
    return lines[-1][:40] if lines else ""


class StageFailed(RuntimeError):
    """A stage's child process failed; the message ends with its log."""


def _run_parallel(todo: list[Stage], root: Path, jobs: int, bar) -> None:
    """Run `todo` in up to `jobs` child processes, each stage once its inputs are done, the costliest
    ready stage first. Each child gets its share of the CPU cores (on a small CPU one thread per
    process beats two threads in one: less synchronisation, and decoding is bound by memory reads)
    or, when there are enough GPUs, a GPU of its own. A child's output goes to logs/<stage>.log."""
    import torch

    gpus = torch.cuda.device_count()
    threads = max(1, (os.cpu_count() or 1) // jobs)
    (root / "logs").mkdir(exist_ok=True)
    pending, running, failed = list(todo), {}, []  # failed: (what, log)
    free_slots, shown = list(range(jobs)), ""
    while pending or running:
        ready = sorted((s for s in pending if all(_done(n.directory(root)) for n in s.needs)), key=lambda s: -s.cost)
        while ready and free_slots and not failed:
            stage, slot = ready.pop(0), free_slots.pop(0)
            pending.remove(stage)
            out = stage.directory(root)
            log = root / "logs" / f"{stage.kind}-{out.name}.log"
            env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
                   "TOKENIZERS_PARALLELISM": "false"}
            if gpus >= jobs:
                env["CUDA_VISIBLE_DEVICES"] = str(slot)
            tqdm.write(f"[langshift run] {stage.kind}: {stage.label} -> {out} (log: {log})")
            with open(log, "ab") as sink:
                child = subprocess.Popen([sys.executable, "-m", "langshift.runner", str(root), out.name],
                                         stdout=sink, stderr=subprocess.STDOUT, env=env)
            running[child] = (stage, slot, log)
        now = " | ".join(f"{s.kind} {s.label}: {_last_progress(log)}" for s, _, log in running.values())
        if now != shown:
            bar.set_postfix_str(shown := now)
        if not running:
            break  # nothing can start: a failure, or inputs that will never be done
        time.sleep(0.5)
        for child in [c for c in running if c.poll() is not None]:
            stage, slot, log = running.pop(child)
            free_slots.append(slot)
            if child.returncode == 0 and _done(stage.directory(root)):
                bar.update(1)
            else:
                failed.append((f"{stage.kind} {stage.label} (exit {child.returncode})", log))
    if failed:
        what, log = failed[0]
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        raise StageFailed(f"stage {what} failed; the end of {log}:\n" + "\n".join(tail))


def _stage_main(root: str, name: str) -> None:
    """Child process of `_run_parallel`: run the stage whose directory is `name` in `root`."""
    raw = _read_json(Path(root) / "experiment.json")["experiment"]
    exp = Experiment(**{**raw, "models": [ModelEntry(**m) for m in raw["models"]]})
    stage = next(s for s, _ in plan(exp, Path(root)) if s.directory(Path(root)).name == name)
    _execute(stage, Path(root))


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def run(
    config: Path = typer.Argument(..., help="Experiment config YAML (see configs/)."),
    quick: bool = typer.Option(False, "--quick", help="Apply the config's 'quick' overrides: a smoke run."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: --set eval.limit=5 (YAML value)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and print the plan without running it."),
    jobs: int = typer.Option(None, "--jobs", help="Stages run at once, each in its own process (config: jobs)."),
) -> None:
    """Run an experiment: data -> train -> eval -> report, skipping stages already done."""
    try:
        exp = load_experiment(config, quick=quick, overrides=[*set_, *([f"jobs={jobs}"] if jobs else [])])
        if dry_run:
            root = Path(exp.out)
            for stage, _ in plan(exp, root):
                mark = "done" if _done(stage.directory(root)) else "todo"
                typer.echo(f"{mark}  {stage.kind:5s}  {stage.label}  {stage.directory(root)}")
            return
        root = run_experiment(exp)
    except InputError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    except StageFailed as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    report = root / "report.md"
    typer.echo(f"\nreport: {report}")
    from langshift.report.tables import headline_table

    typer.echo(headline_table(_read_json(root / "results.json")["rows"]))



if __name__ == "__main__":
    _stage_main(*sys.argv[1:])
