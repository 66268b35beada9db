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
from langshift.train.encode import Sequence, pad_batch
from langshift.train.logps import completion_logps


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
def reference_logps(model, seqs: list[Sequence], cache: ReferenceCache, *, model_key: str, pad_id: int,
                    batch_tokens: int = 8192, device=None, progress: bool = True) -> list[float]:
    """log pi_ref(y|x) for every sequence, from the cache where present, else by a no-grad pass.
    `model_key` is the model's `weights_fingerprint` (computed once by the caller)."""
    keys = [sequence_key(s) for s in seqs]
    have = cache.get(model_key, sorted(set(keys)))
    todo = sorted({k: s for k, s in zip(keys, seqs, strict=False) if k not in have}.items(), key=lambda kv: len(kv[1].ids))
    lm = causal_lm(model)
    was_training = lm.training
    lm.eval()
    device = device or next(lm.parameters()).device
    bar = progress_bar(total=len(todo), desc="reference log-probs", unit="seq", disable=not progress or not todo)
    i = 0
    while i < len(todo):
        width = len(todo[i][1].ids)
        n = max(1, batch_tokens // max(width, 1))
        n = max(1, min(n, batch_tokens // max(len(todo[min(i + n, len(todo)) - 1][1].ids), 1)))
        chunk = todo[i:i + n]
        batch = {k: v.to(device) for k, v in pad_batch([s for _, s in chunk], pad_id).items()}
        logps, _ = completion_logps(lm, batch["input_ids"], batch["attention_mask"], batch["completion_mask"])
        values = {k: float(v) for (k, _), v in zip(chunk, logps.cpu().tolist(), strict=False)}
        cache.put(model_key, values)
        have.update(values)
        bar.update(len(chunk))
        i += len(chunk)
    bar.close()
    lm.train(was_training)
    return [have[k] for k in keys]
