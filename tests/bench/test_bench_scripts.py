"""Every benchmark script in bench/ (train_step and gpu_check have their own tests) runs end to end, in its
own process, on a tiny random model with tiny sizes, offline. No timing is asserted: each script's last
stdout line is one JSON object, and the test checks its shape and sanity -- the keys are there, counts
match the sizes asked for, accuracies lie in [0, 1] and both sides of a comparison agree where the
script compares them (BELEBELE accuracies and log-likelihoods against lm-eval, greedy outputs against
transformers `generate`, log-probs against a plain loop, compiled against eager), rates and speedups
are positive."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"


def run_bench(script: str, *args: str, timeout: int = 600) -> dict:
    """`python bench/<script> args...` offline on one thread; its last stdout line, parsed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, str(BENCH / script), *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, f"{script} exited with {proc.returncode}:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def tiny_m2m100(tmp_path_factory) -> Path:
    from langshift.testing.tiny_mt import make_tiny_m2m100

    return make_tiny_m2m100(tmp_path_factory.mktemp("tiny-m2m100"))


@pytest.mark.parametrize("data", ["demo", "synthetic"])
def test_eval_belebele(tiny_llama, data):
    pytest.importorskip("lm_eval")
    extra = ["--data", ""] if data == "synthetic" else []  # no data file: the script's synthetic items
    out = run_bench("eval_belebele.py", "--model", str(tiny_llama), "--limit", "6", "--batch-size", "4",
                    "--rounds", "1", "--threads", "1", "--lm-eval-bs1", *extra)
    assert out["items"] == 6 and out["batch_size"] == 4 and out["rounds"] == 1
    assert len(out["ours_seconds"]) == len(out["lm_eval_seconds"]) == 1
    assert 0 <= out["accuracy_ours"] <= 1
    assert out["accuracy_ours"] == out["accuracy_lm_eval"]  # the script also exits non-zero otherwise
    assert 0 <= out["max_abs_loglik_diff"] < 1e-3
    for key in ("ours_items_per_s", "lm_eval_items_per_s", "speedup_vs_lm_eval", "lm_eval_bs1_items_per_s",
                "speedup_vs_lm_eval_bs1"):
        assert positive(out[key]), key


def test_eval_generate(tiny_llama):
    out = run_bench("eval_generate.py", "--model", str(tiny_llama), "--prompts", "2", "--max-new-tokens", "8",
                    "--batch-size", "2", "--our-batch-size", "4", "--threads", "1", "--sweep", "1,3",
                    "--eval-setting", "3x2", "--eval-batch-size", "2")
    assert out["prompts"] == 4  # 2 prompts in each of the two default languages
    assert out["max_new_tokens"] == 8
    assert out["greedy_identical"] is True  # the script exits non-zero when they differ
    for key in ("hf_generate_tok_s_bs2", "ours_tok_s_bs2", "hf_generate_tok_s_bs4", "ours_tok_s_bs4",
                "speedup_vs_hf_generate", "speedup_at_our_batch", "llamacpp_f16_tok_s", "llamacpp_q8_0_tok_s",
                "llamacpp_speedup_vs_ours", "llamacpp_f16_tok_s_parallel1", "llamacpp_f16_tok_s_parallel3",
                "eval_setting_torch_s", "eval_setting_llamacpp_s", "eval_setting_llamacpp_speedup"):
        assert positive(out[key]), key
    assert 0 <= out["llamacpp_greedy_equal_share"] <= 1 and out["llamacpp_greedy_differ"] >= 0
    # the child's clock: its parts are shares of one run, so they lie in [0, 1] and sum to at most 1
    shares = [out[f"llamacpp_{part}_share"] for part in ("load", "decode", "sample")]
    assert all(0 < x < 1 for x in shares) and sum(shares) <= 1.001
    assert out["eval_setting"].startswith("3 sw prompts (demo) x 2 samples")
    low, diff, high = (out["eval_setting_fidelity_diff"][i] for i in (1, 0, 2))
    assert -100 <= low <= diff <= high <= 100 and 0 <= out["eval_setting_fidelity_p"] <= 1
    assert all(0 <= out[f"eval_setting_fidelity_{b}"] <= 100 for b in ("torch", "llamacpp"))
    # auto's probe of the setting's first batch (2 prompts x 2 samples x 8 tokens), against the measured times
    assert out["auto_probe"] == "2 prompts x 2 x 8 tokens"
    assert out["auto_pick"] in ("hf", "llamacpp") and out["auto_pick_by_measured_times"] in ("hf", "llamacpp")
    assert positive(out["auto_predicted_llamacpp_speedup"])


def test_eval_langpref(tiny_llama):
    out = run_bench("eval_langpref.py", "--model", str(tiny_llama), "--items", "3", "--rounds", "1",
                    "--threads", "1")
    assert out["items"] == 3 and out["sequences"] == 4 * 3  # x_L ++ y_L and x_L ++ y_other, L in {sw, en}
    assert out["tokens"] > out["sequences"]
    assert 0 <= out["max_abs_logp_diff"] <= 1e-2  # the script exits non-zero beyond
    for key in ("items_per_s", "items_per_s_plain", "speedup_vs_plain_loop"):
        assert positive(out[key]), key
    assert out["threads"] == 1 and len(out["load_average"]) == 3


@pytest.mark.parametrize("model", ["given", "built"])
def test_translate(tiny_m2m100, model):
    pytest.importorskip("ctranslate2")
    # "given": a tiny M2M100 passed as --model; "built": the script's own random M2M100 (opus-mt's shape)
    # at the smallest vocabulary it builds
    extra = ["--model", str(tiny_m2m100)] if model == "given" else ["--vocab", "0"]
    out = run_bench("translate.py", *extra, "--segments", "5", "--beam-size", "2", "--max-length", "4",
                    "--batch-size", "2", "--threads", "1")
    assert out["segments"] == 5 and out["beam_size"] == 2
    assert out["max_length"] == out["min_length"] == 4
    if model == "given":
        assert out["model"] == str(tiny_m2m100)
    else:
        assert out["model"].startswith("random M2M100")
    for key in ("hf_seg_per_s", "ct2_int8_seg_per_s", "speedup_ct2_vs_hf"):
        assert positive(out[key]), key


def test_compile_step(tiny_llama):
    out = run_bench("compile_step.py", "--model", str(tiny_llama), "--records", "4")
    assert out["records"] == 4 and out["micro_batch_records"] == 2 and out["threads"] == 1
    for key in ("eager_first_s", "eager_steady_s", "compiled_first_s", "compiled_steady_s", "steady_speedup"):
        assert positive(out[key]), key
    assert math.isfinite(out["compile_s"])
    assert out["break_even_steps"] is None or math.isfinite(out["break_even_steps"])
    assert 0 <= out["max_abs_logp_diff_per_token"] <= 1e-4  # compiled layers compute the same log-probs
    assert len(out["load_avg_before"]) == len(out["load_avg_after"]) == 3
