"""Items/s of langshift's held-out language-preference scoring against a plain per-sequence loop.

Both score the same four sequences per held-out pair (x_L ++ y_L and x_L ++ y_other, L in {target,
English}) with the same model. The plain loop is what one writes first: one `model(input_ids).logits`
per sequence, a log-softmax over the whole vocabulary at every position, the response's tokens gathered.
Ours (`eval/heldout.py`) lays them out as training does (`train/layout.py`: the two replies under one
prompt share it, rows packed without padding) and projects only the response positions' hidden states
onto the vocabulary. The two must agree on
every log-prob (the script fails otherwise).

    python bench/eval_langpref.py [--model smollm2] [--items 60] [--lang sw] [--rounds 2]

Last line: one JSON object with `items_per_s`, `items_per_s_plain` and `speedup_vs_plain_loop`.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch


def plain_scores(model, sequences) -> list[float]:
    """log π(y|x) of each sequence from its own full-vocabulary forward."""
    out = []
    with torch.no_grad():
        for s in sequences:
            ids = torch.tensor([s.ids])
            logp = model(ids).logits.float().log_softmax(-1)[0]
            targets = ids[0, s.prompt_len:]
            out.append(logp[s.prompt_len - 1:-1].gather(-1, targets[:, None]).sum().item())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--items", type=int, default=60)
    ap.add_argument("--lang", default="sw")
    ap.add_argument("--rounds", type=int, default=2, help="alternating timed rounds; the fastest of each counts")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from langshift.data.seed import heldout_records
    from langshift.eval.heldout import SIDES, score_sequences
    from langshift.models import chat_format, load
    from langshift.train.encode import Encoder

    model, tok = load(args.model, dtype="float32")
    model.eval()
    records = heldout_records(args.lang)[: args.items]
    encoder = Encoder(tok, chat_format(tok), 4096)
    encoded = [encoder.encode(r) for r in records]
    sequences = [e[role] for e in encoded for side in SIDES.values() for role in side]

    ours_s, plain_s = [], []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        ours = [lp for lp, _ in score_sequences(model, sequences)]
        ours_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        plain = plain_scores(model, sequences)
        plain_s.append(time.perf_counter() - t0)
    worst = max(abs(a - b) for a, b in zip(ours, plain, strict=True))
    if worst > 1e-2:
        raise SystemExit(f"log-probs disagree by up to {worst:.4f} nats")
    result = {
        "items": len(records), "sequences": len(sequences), "tokens": sum(len(s.ids) for s in sequences),
        "seconds": round(min(ours_s), 2), "seconds_plain": round(min(plain_s), 2),
        "items_per_s": round(len(records) / min(ours_s), 2), "items_per_s_plain": round(len(records) / min(plain_s), 2),
        "speedup_vs_plain_loop": round(min(plain_s) / min(ours_s), 2), "max_abs_logp_diff": worst,
        "threads": torch.get_num_threads(), "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
