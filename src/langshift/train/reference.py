"""Reference log-probs log pi_ref(y|x), computed once before training and kept on disk.

The reference model is the policy at step 0, so a no-grad pass over every sequence before training
gives all the pi_ref terms DPO and CLO need, and no second model sits in memory while training.
Values live in a SQLite file keyed by (model fingerprint, sequence hash): a rerun, a resumed run, or
a run on a subset of the same data (the data-size sweep) computes nothing twice.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import torch

from langshift.files import stable_hash
from langshift.models import causal_lm
from langshift.progress import progress_bar
from langshift.train.encode import Sequence
from langshift.train.layout import LayoutPlan, token_batches
from langshift.train.logps import sequence_logps


def sequence_key(seq: Sequence) -> str:
    return stable_hash(seq.ids, seq.prompt_len, length=24)


class ReferenceCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS ref (model TEXT, seq TEXT, logp REAL, PRIMARY KEY (model, seq))")

    def _connect(self):
        return sqlite3.connect(self.path, timeout=60)

    def get(self, model_key: str, keys: list[str]) -> dict[str, float]:
        out: dict[str, float] = {}
        with closing(self._connect()) as db:
            for i in range(0, len(keys), 500):
                part = keys[i:i + 500]
                q = f"SELECT seq, logp FROM ref WHERE model=? AND seq IN ({','.join('?' * len(part))})"
                out.update(db.execute(q, [model_key, *part]).fetchall())
        return out

    def put(self, model_key: str, values: dict[str, float]) -> None:
        with closing(self._connect()) as db, db:
            db.executemany("INSERT OR REPLACE INTO ref VALUES (?, ?, ?)", [(model_key, k, v) for k, v in values.items()])


@torch.no_grad()
def reference_logps(model, seqs: list[Sequence], cache: ReferenceCache, *, model_key: str, plan: LayoutPlan,
                    batch_tokens: int = 8192, device=None, progress: bool = True) -> list[float]:
    """log pi_ref(y|x) for every sequence, from the cache where present, else by a no-grad pass laid out as
    training lays out its forward (`plan`: prompts shared, rows packed), about `batch_tokens` tokens per
    forward. `model_key` is the model's `weights_fingerprint` (computed once by the caller)."""
    keys = [sequence_key(s) for s in seqs]
    have = cache.get(model_key, sorted(set(keys)))
    todo = {k: s for k, s in zip(keys, seqs, strict=True) if k not in have}
    todo_keys, todo_seqs = list(todo), list(todo.values())
    lm = causal_lm(model)
    was_training = lm.training
    lm.eval()
    bar = progress_bar(total=len(todo_seqs), desc="reference log-probs", unit="seq", disable=not progress or not todo)
    for batch in token_batches(todo_seqs, batch_tokens, plan.share):
        logps, _ = sequence_logps(lm, [todo_seqs[i] for i in batch], plan, device)
        values = {todo_keys[i]: v for i, v in zip(batch, logps.cpu().tolist(), strict=True)}
        cache.put(model_key, values)
        have.update(values)
        bar.update(len(batch))
    bar.close()
    lm.train(was_training)
    return [have[k] for k in keys]
