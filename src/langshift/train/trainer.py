"""One thin trainer for every method, on `transformers.Trainer` (so accelerate/DDP/FSDP/DeepSpeed work).

Methods differ only in which sequences form a training unit and in their loss (objectives.py):
    records -> units (encode + method.unit_roles) -> length-grouped shuffled batches
            -> one laid-out forward over the batch's sequences (layout.py: prompts shared, rows packed,
               no padding; logps.py) -> method.objective(policy, ref, ...)
Reference log-probs come from a no-grad pre-pass cached on disk (reference.py), or, with
`ref="on-the-fly"`, from a frozen copy of the model kept in memory (the classic two-model path).
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset, Sampler
from transformers import Trainer, TrainerCallback

from langshift.files import append_jsonl, iter_jsonl, write_jsonl
from langshift.progress import report_steps
from langshift.records import Record, source_id
from langshift.train.encode import Encoder, Sequence
from langshift.train.layout import LAYOUT_KEYS, LayoutPlan, layout
from langshift.train.logps import layout_logps
from langshift.train.objectives import Hyper, Method, unit_side


@dataclass
class Unit:
    seqs: list[Sequence]
    ref: list[float] | None
    side: str

    @property
    def length(self) -> int:
        return sum(len(s.ids) for s in self.seqs)


class UnitDataset(Dataset):
    def __init__(self, units: list[Unit]):
        self.units = units

    def __len__(self):
        return len(self.units)

    def __getitem__(self, i):
        return self.units[i]


def cross_partners(records: list[Record]) -> list[list[Record]]:
    """For each record, the records of the other target languages made from the same English source
    (`records.source_id`: meta.source_id, else the id), ordered by language: the replies its target
    prompt also rejects under `cl_negatives: all`. [] for a record whose source has one language."""
    groups: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        groups[source_id(r)].append(r)
    return [sorted((o for o in groups[source_id(r)] if o.lang != r.lang), key=lambda o: o.lang) for r in records]


def build_units(records, encoder: Encoder, method: Method, cl_negatives: str = "english") -> list[Unit]:
    """Encode records into the method's units (reference log-probs not yet filled). With `cl_negatives`
    "all" a CLO unit also holds x_t ++ y_t' for each partner record t' (`cross_partners`), after its four
    sequences: units then differ in length, which the layout and the objective take as they come."""
    cross = cl_negatives == "all" and method.cross_negatives
    partners = cross_partners(records) if cross else [[] for _ in records]
    units = []
    for rec, others in zip(records, partners, strict=True):
        enc = encoder.encode(rec)
        for roles in method.unit_roles:
            seqs = [enc[role] for role in roles]
            if cross and "tgt_rejected" in roles:
                seqs += [encoder.cross_negative(rec, other) for other in others]
            units.append(Unit(seqs, None, unit_side(roles)))
    return units


def language_counts(records: list[Record], method: Method, cl_negatives: str = "english") -> dict[str, dict]:
    """Per target language: records, units, cross-target negatives and singles (records whose English
    source has no other language, so their target prompt rejects y_en alone), for config.yaml."""
    cross = cl_negatives == "all" and method.cross_negatives
    partners = cross_partners(records) if cross else [[] for _ in records]
    counts: dict[str, dict] = {}
    for rec, others in zip(records, partners, strict=True):
        c = counts.setdefault(rec.lang, {"records": 0, "units": 0, "negatives": 0, "singles": 0})
        c["records"] += 1
        c["units"] += method.units_per_record
        c["negatives"] += len(others)
        c["singles"] += int(cross and not others)
    return counts


def attach_reference(units: list[Unit], ref_logps) -> None:
    """Fill every unit's `ref` from `ref_logps(list[Sequence]) -> list[float]` (one call for all)."""
    flat = ref_logps([s for u in units for s in u.seqs])
    start = 0
    for u in units:
        u.ref = flat[start:start + len(u.seqs)]
        start += len(u.seqs)


class UnitCollator:
    """A batch of units -> the layout of its sequences (unit by unit, in role order): the collator pads
    nothing; `plan` decides prompt sharing and packing, as it does for the reference pass."""

    def __init__(self, plan: LayoutPlan):
        self.plan = plan

    def __call__(self, units: list[Unit]) -> dict:
        batch = layout([s for u in units for s in u.seqs], self.plan)
        batch["sides"] = [u.side for u in units]
        batch["unit_sizes"] = [len(u.seqs) for u in units]
        if units[0].ref is not None:
            batch["ref_logps"] = torch.tensor([r for u in units for r in u.ref], dtype=torch.float32)
        return batch


def by_unit(flat: torch.Tensor, sizes: list[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-sequence values of a batch (flat, unit after unit) -> (n_units, longest unit) and the mask of the
    columns each unit has (None when every unit has the same length: the plain reshape). Missing columns
    hold 0; objectives read them through the mask only."""
    k = max(sizes)
    if all(n == k for n in sizes):
        return flat.view(-1, k), None
    present = torch.arange(k, device=flat.device)[None, :] < torch.tensor(sizes, device=flat.device)[:, None]
    out = flat.new_zeros((len(sizes), k))
    return out.masked_scatter(present, flat), present


class LengthGroupedSampler(Sampler):
    """Seeded shuffle, then sort by length inside mega-batches of 50 batches, then shuffle batches: a
    batch's records have similar lengths, so its forward's tokens stay near the budget the micro-batch
    was sized for (nothing is padded: the layout packs). Depends only on (seed, epoch), so resume
    replays it."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int, mega: int = 50):
        self.lengths, self.batch_size, self.seed, self.mega, self.epoch = lengths, batch_size, seed, mega, 0

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def __len__(self):
        return len(self.lengths)

    def __iter__(self):
        rng = random.Random(self.seed * 1000003 + self.epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        size = self.batch_size * self.mega
        groups = [sorted(order[i:i + size], key=lambda j: -self.lengths[j]) for i in range(0, len(order), size)]
        batches = [g[i:i + self.batch_size] for g in groups for i in range(0, len(g), self.batch_size)]
        rng.shuffle(batches)
        return iter([i for b in batches for i in b])


class MetricsFile(TrainerCallback):
    """metrics.jsonl: one line per logging step, language sides nested: {"step", "loss", "lr", "nll",
    "en": {"reward_chosen", ...}, "tgt": {...}}; evaluation lines carry "eval_loss" etc."""

    def __init__(self, path):
        self.path = path

    def on_log(self, args, state, control, logs=None, **kw):
        if not state.is_world_process_zero or not logs:
            return
        row: dict = {"step": state.global_step, "epoch": state.epoch}
        for key, value in logs.items():
            key = "lr" if key == "learning_rate" else key
            prefix, _, name = key.rpartition("/")
            if prefix:
                row.setdefault(prefix, {})[name] = value
            else:
                row[key] = value
        append_jsonl(self.path, row)

    def rewind(self, step: int) -> int:
        """Make the file read as one run resumed at `step`: drop the lines past it (logged after the
        checkpoint the run resumes from) and the end-of-run summary (the resumed run writes its own).
        Rewritten atomically; returns the number of lines dropped."""
        path = Path(self.path)
        if not path.exists():
            return 0
        rows = [row for _, row in iter_jsonl(path, skip_torn_tail=True)]
        kept = [r for r in rows if r.get("step", 0) <= step and "train_runtime" not in r]
        if len(kept) != len(rows) or path.read_bytes()[-1:] not in (b"", b"\n"):
            write_jsonl(path, kept)
        return len(rows) - len(kept)


class StepProgress(TrainerCallback):
    """Optimizer steps on the progress channel a parent process reads (langshift.progress)."""

    def on_train_begin(self, args, state, control, **kw):
        self.t0, self.first = time.monotonic(), state.global_step  # a resumed run's rate counts its own steps

    def on_step_end(self, args, state, control, **kw):
        if state.is_world_process_zero:
            report_steps(state.global_step - self.first, state.max_steps - self.first, time.monotonic() - self.t0)


class LangshiftTrainer(Trainer):
    def __init__(self, *args, method: Method, hyper: Hyper, plan: LayoutPlan, ref_model=None, **kw):
        super().__init__(*args, **kw)
        self.method, self.hyper, self.plan, self.ref_model = method, hyper, plan, ref_model
        self.model_accepts_loss_kwargs = False  # our loss is already a mean: let Trainer divide by GA steps
        self._metrics: dict[str, dict[str, list[float]]] = {"train": defaultdict(list), "eval": defaultdict(list)}

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        # Every rank makes the checkpoint directory first. transformers (5.x) decides whether the best
        # checkpoint exists right after `save_model`, before the optimizer save that, under FSDP's
        # SHARDED_STATE_DICT, writes the checkpoint's first file: each rank then answered as its timing
        # fell, a rank that saw no best checkpoint skipped the collective load of it at the end, and the
        # others waited for it forever.
        if output_dir is not None:
            Path(output_dir).mkdir(parents=True, exist_ok=True)
        return super().save_model(output_dir, _internal_call)

    def _get_train_sampler(self, *args, **kw):
        units = self.train_dataset.units
        return LengthGroupedSampler([u.length for u in units], self.args.per_device_train_batch_size, self.args.seed)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        sizes = inputs["unit_sizes"]
        out = model(**{key: inputs[key] for key in LAYOUT_KEYS})
        policy, present = by_unit(out["logps"], sizes)
        n_tok, _ = by_unit(out["n_tokens"], sizes)
        ref = inputs.get("ref_logps")
        if self.method.needs_ref(self.hyper.pref_loss) and ref is None:  # on-the-fly reference model
            with torch.no_grad():
                ref, _ = layout_logps(self.ref_model, inputs, self.plan)
        ref = by_unit(ref, sizes)[0] if ref is not None else None
        loss, metrics = self.method.objective(policy, ref, n_tok, inputs["sides"], self.hyper, present)
        self._store(metrics, "train" if model.training else "eval")
        return (loss, out) if return_outputs else loss

    def _store(self, metrics: dict, split: str):
        keys = sorted(metrics)
        values = torch.stack([metrics[k].float().reshape(()) for k in keys])
        values = self.accelerator.gather(values[None])  # (processes, keys): every process's row, none dropped
        for key, col in zip(keys, values.nanmean(0).tolist(), strict=True):
            if not math.isnan(col):
                self._metrics[split][key].append(col)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def log(self, logs: dict, *args, **kw):
        split = "eval" if any(k.startswith("eval_") for k in logs) else "train"
        prefix = "eval_" if split == "eval" else ""
        for key, values in self._metrics[split].items():
            if values:
                logs[prefix + key] = sum(values) / len(values)
        self._metrics[split].clear()
        super().log(logs, *args, **kw)


def frozen_copy(model):
    ref = copy.deepcopy(model).eval()
    ref.requires_grad_(False)
    return ref
