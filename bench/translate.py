"""Segments/s of the `ctranslate2` backend (int8) against the `hf` backend: same model, same segments, CPU.

Both go through langshift's translators (same tokenizer, same language tokens, same length-sorted
batches, same beam size and length limit); only the engine differs. Without --model, a random M2M100
of a small real translator's shape (opus-mt: d_model 512, 6+6 layers, FFN 2048, ~32k vocabulary; a
SentencePiece model trained here, padded with fairseq's made-up words) is built in a temp dir. Both engines are told to decode exactly --max-length tokens
(min length = max length), so they do the same work whatever random weights would emit.
Segments are the sentences of a few markdown answers, cut by `langshift.data.segment`.

    python bench/translate.py [--model DIR_OR_HUB_ID] [--segments 64] [--beam-size 4] [--max-length 32]

Last line: one JSON object with `speedup_ct2_vs_hf`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from langshift.data.segment import segment
from langshift.data.translators import convert, make_translator
from langshift.testing.tiny_mt import MT_CORPUS, make_tiny_m2m100

ANSWERS = [
    "## Keeping a sink clear\n\nA few simple habits help. Never pour grease down the drain; let it cool and "
    "throw it away. Use a strainer to catch food scraps, and run hot water for a minute after washing up.\n"
    "- Once a month, pour a kettle of hot water down the drain.\n- If it still clogs, try a plunger first.",
    "Sunlight contains all colours. When it passes through the air, tiny gas molecules scatter short "
    "wavelengths such as blue much more than long ones such as red. That scattered light reaches your eyes "
    "from every direction, so the whole sky looks blue. At sunset the light travels through more air.",
    "1. Sort the list first.\n2. Look at the middle element and compare it with the value you want.\n"
    "3. If it is smaller, keep searching the right half; otherwise search the left half.\n"
    "4. Stop when the element is found or the range is empty. Each step halves the work, so it is fast.",
    "Nairobi is the capital and largest city of Kenya. It grew from a railway depot built in 1899 and is "
    "now a centre for business, culture and technology in East Africa. The city also has a national park "
    "where giraffes and lions live within sight of the skyscrapers.",
]


def bench_segments(n: int) -> list[str]:
    segs = [s for text in ANSWERS for s in segment(text).segments]
    out, k = [], 0
    while len(out) < n:  # vary them so a cache or dedup could never help either side
        out.append(segs[k % len(segs)] if k < len(segs) else f"{segs[k % len(segs)]} ({k // len(segs)})")
        k += 1
    return out


def timed(tr, segs: list[str], tgt: str) -> tuple[float, list[str]]:
    """Wall time of one translate() call over all segments, after a warm-up call."""
    tr.translate(segs[:2], "en", tgt)  # warm-up: first-call allocations and lazy init
    t0 = time.perf_counter()
    out = tr.translate(segs, "en", tgt)
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="HF translator dir or hub id (default: a random M2M100 built here)")
    ap.add_argument("--segments", type=int, default=64)
    ap.add_argument("--beam-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lang", default="sw")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--vocab", type=int, default=32000, help="vocabulary size of the random model")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            corpus = MT_CORPUS + [s for a in ANSWERS for s in a.split("\n")]
            # ~2,000 trained pieces + 100 language tokens, padded with made-up words to --vocab entries
            model = str(
                make_tiny_m2m100(
                    Path(tmp) / "m2m100",
                    corpus=corpus,
                    vocab_size=2000,
                    d_model=512,
                    layers=6,
                    heads=8,
                    ffn=2048,
                    init_std=0.02,
                    madeup_words=max(8, args.vocab - 2104),
                )
            )
        segs = bench_segments(args.segments)
        # min_length = max_length: both engines decode exactly max_length steps, whatever random weights say
        common = dict(
            beam_size=args.beam_size,
            max_length=args.max_length,
            min_length=args.max_length,
            batch_size=args.batch_size,
        )

        hf = make_translator("hf", model=model, device="cpu", **common)
        hf_s, _ = timed(hf, segs, args.lang)
        print(f"hf           {len(segs) / hf_s:8.2f} seg/s  ({hf_s:.1f} s, float32)")
        del hf

        t0 = time.perf_counter()
        ct2_dir = convert(model, Path(tmp) / "ct2-int8", quantization="int8")
        convert_s = time.perf_counter() - t0
        ct = make_translator(
            "ctranslate2",
            model=str(ct2_dir),
            device="cpu",
            compute_type="int8",
            threads=args.threads,
            **common,
        )
        ct_s, _ = timed(ct, segs, args.lang)
        print(
            f"ctranslate2  {len(segs) / ct_s:8.2f} seg/s  ({ct_s:.1f} s, int8, converted in {convert_s:.1f} s)"
        )

    print(
        json.dumps(
            {
                "model": args.model or f"random M2M100 d512 L6+6 ffn2048 vocab~{args.vocab}",
                "segments": len(segs),
                "beam_size": args.beam_size,
                "max_length": args.max_length,
                "min_length": args.max_length,
                "batch_size": args.batch_size,
                "threads": args.threads,
                "hf_seg_per_s": round(len(segs) / hf_s, 3),
                "ct2_int8_seg_per_s": round(len(segs) / ct_s, 3),
                "speedup_ct2_vs_hf": round(hf_s / ct_s, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
