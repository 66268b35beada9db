"""Items/s of langshift's BELEBELE scoring against lm-evaluation-harness, same model, same items, CPU.

Both score the four option labels after the same English prompt (our task YAML for lm-eval,
tests/eval/lm_eval_tasks/), so their accuracies must be identical; the script fails otherwise.
lm-eval runs at the same batch size as ours (its strongest like-for-like setting; `--lm-eval-bs1`
also times its default batch size 1). Where the gain comes from: lm-eval already runs each
single-token context once, but (a) runs every question's passage again, while we run a passage once
for all its questions (BELEBELE: 900 questions on 488 passages; the demo file: 40 on 20), and
(b) takes a log-softmax over the whole vocabulary at every position of every sequence, while we
project only each context's last hidden state onto the vocabulary.

    python bench/eval_belebele.py [--model smollm2] [--limit 40] [--batch-size 8] [--data FILE]

Last line: one JSON object with `speedup_vs_lm_eval` and both accuracies.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "eval" / "lm_eval_tasks"))
DEMO = ROOT / "src" / "langshift" / "data" / "demo" / "belebele.jsonl"

WORDS = (
    "river city market school farmer winter summer train bridge library children teacher doctor road "
    "mountain village festival harvest morning evening museum island factory bakery garden"
).split()


def synthetic_items(n: int, seed: int = 0) -> list[dict]:
    """BELEBELE-schema rows with ~120-word passages, for when the demo file is absent."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        passage = " ".join(
            f"The {rng.choice(WORDS)} near the {rng.choice(WORDS)} opened in {rng.randint(1900, 2020)}."
            for _ in range(15)
        )
        opts = [f"In {rng.randint(1900, 2020)}" for _ in range(4)]
        rows.append(
            {
                "link": f"synthetic/{i}",
                "question_number": 1,
                "flores_passage": passage,
                "question": f"When did the {rng.choice(WORDS)} open?",
                **{f"mc_answer{k + 1}": o for k, o in enumerate(opts)},
                "correct_answer_num": str(rng.randint(1, 4)),
                "dialect": "eng_Latn",
                "ds": "synthetic",
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--data", default=str(DEMO) if DEMO.exists() else None)
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument(
        "--rounds", type=int, default=3, help="alternating timed rounds; the fastest of each counts"
    )
    ap.add_argument(
        "--lm-eval-bs1", action="store_true", help="also time lm-eval at its default batch size 1"
    )
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from peer import lm_eval_belebele

    from langshift.eval.belebele import evaluate_belebele, load_belebele
    from langshift.files import read_jsonl, write_jsonl
    from langshift.models import load

    tmp = Path(tempfile.mkdtemp(prefix="bench-belebele-"))
    if args.data:
        rows = [r for r in read_jsonl(args.data) if r.get("dialect", "eng_Latn") == "eng_Latn"][: args.limit]
    else:
        rows = synthetic_items(args.limit)
    data = write_jsonl(tmp / "items.jsonl", rows)
    warm = write_jsonl(tmp / "warm.jsonl", rows[:2])
    items = load_belebele(data, "en")
    model, tok = load(args.model)

    evaluate_belebele(model, tok, items[:2], "en", batch_size=args.batch_size)  # warm-up (allocator, kernels)
    lm_eval_belebele(model, tok, warm, batch_size=args.batch_size)
    # Alternate the two, `--rounds` times, and keep each one's fastest round: on a shared machine the
    # load changes from minute to minute, and the minimum is the least disturbed measurement.
    t_ours, t_theirs = [], []
    for _ in range(args.rounds):
        t = time.perf_counter()
        ours = evaluate_belebele(model, tok, items, "en", out_dir=tmp, batch_size=args.batch_size)
        t_ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        theirs = lm_eval_belebele(model, tok, data, batch_size=args.batch_size)
        t_theirs.append(time.perf_counter() - t)
    acc_ours = ours["metrics"]["accuracy"]["value"]  # the tasks' shared result shape (eval/tasks.py)
    accuracies = {acc_ours, theirs["accuracy"]}
    extra = {}
    if args.lm_eval_bs1:
        t = time.perf_counter()
        theirs_bs1 = lm_eval_belebele(model, tok, data, batch_size=1)
        t_bs1 = time.perf_counter() - t
        accuracies.add(theirs_bs1["accuracy"])
        extra = {
            "lm_eval_bs1_items_per_s": round(len(items) / t_bs1, 3),
            "speedup_vs_lm_eval_bs1": round(t_bs1 / min(t_ours), 3),
        }

    mine = [r["loglik"] for r in read_jsonl(tmp / "belebele.en.jsonl")]
    max_diff = max(
        abs(a - b) for x, y in zip(mine, theirs["loglik"], strict=True) for a, b in zip(x, y, strict=True)
    )
    n = len(items)
    result = {
        "model": args.model, "items": n, "batch_size": args.batch_size, "threads": torch.get_num_threads(),
        "rounds": args.rounds, "ours_seconds": [round(x, 2) for x in t_ours],
        "lm_eval_seconds": [round(x, 2) for x in t_theirs],
        "ours_items_per_s": round(n / min(t_ours), 3), "lm_eval_items_per_s": round(n / min(t_theirs), 3),
        "speedup_vs_lm_eval": round(min(t_theirs) / min(t_ours), 3), **extra,
        "accuracy_ours": acc_ours, "accuracy_lm_eval": theirs["accuracy"], "max_abs_loglik_diff": max_diff,
    }  # fmt: skip
    print(json.dumps(result))
    if len(accuracies) != 1:
        sys.exit("accuracies differ between langshift and lm-eval")


if __name__ == "__main__":
    main()
