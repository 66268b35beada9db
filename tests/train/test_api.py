"""langshift as a library: `CLOConfig` / `CLOTrainer` in TRL's idiom, `records_from`, `evaluate` and
`compare` from Python. The command line and Python are one code path: the same seed and data through
`CLOTrainer` and through `langshift train` give the same metrics.jsonl, line for line, and the same
weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from langshift.files import InputError
from langshift.records import Record, records_from, save_records

TIMING = ("train_runtime", "train_samples_per_second", "train_steps_per_second", "eval_runtime",
          "eval_samples_per_second", "eval_steps_per_second")


def _rows(n: int = 10) -> list[dict]:
    return [Record(f"r{i}", "sw", f"Tell me about item {i}.", f"Item {i} is a kind of water that boils fast.",
                   f"Niambie kuhusu kitu {i}.", f"Kitu {i} ni aina ya maji yanayochemka haraka.").to_dict()
            for i in range(n)]


def _metrics(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def _config(tmp_path, **kw):
    from langshift import CLOConfig

    base = dict(output_dir=str(tmp_path / "checkpoints"), method="clo", max_steps=3, batch_size=3, learning_rate=1e-2,
                cache_dir=str(tmp_path / "cache"), val_size=1, disable_tqdm=True)
    return CLOConfig(**{**base, **kw})


def test_clo_trainer_and_langshift_train_are_one_code_path(tmp_path, tiny_llama):
    """Same seed, data and options: metrics.jsonl equal line for line (timings aside), weights equal."""
    import datasets

    from langshift import CLOTrainer
    from langshift.cli import app

    data = save_records(tmp_path / "records.jsonl", [Record(**r) for r in _rows()])
    cli_out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["train", "--method", "clo", "--model", str(tiny_llama), "--data", str(data),
                                      "--lang", "sw", "--out", str(cli_out), "--max-steps", "3", "--batch-size", "3",
                                      "--lr", "1e-2", "--val-size", "1", "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output

    py_out = tmp_path / "py"
    trainer = CLOTrainer(str(tiny_llama), args=_config(py_out, cache_dir=str(tmp_path / "cache")),
                         train_dataset=records_from(datasets.Dataset.from_list(_rows()), lang="sw"))
    trainer.train()
    trainer.save_model(str(py_out / "model"))

    ours, theirs = _metrics(py_out / "checkpoints" / "metrics.jsonl"), _metrics(cli_out / "metrics.jsonl")
    assert len(ours) == len(theirs) >= 4 and ours == theirs
    a, b = load_file(cli_out / "model.safetensors"), load_file(py_out / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert trainer.facts["units"] == 9 and trainer.facts["val_records"] == 1
    # after training the model is an ordinary causal LM again (it generates)
    ids = trainer.processing_class("Habari", return_tensors="pt").input_ids
    assert trainer.model.generate(ids, max_new_tokens=2, do_sample=False).shape[1] == ids.shape[1] + 2


def test_config_fields_come_from_the_training_options():
    from transformers import HfArgumentParser

    from langshift import CLOConfig
    from langshift.train.config import TrainConfig

    config = CLOConfig(output_dir="x")
    assert (config.lam, config.beta, config.learning_rate, config.num_train_epochs, config.lr_scheduler_kwargs) == \
        (0.5, 0.1, 5e-5, 1.0, {"min_lr": 1.1e-6})
    fields = CLOConfig.__dataclass_fields__
    assert fields["pref_loss"].metadata["help"] == TrainConfig.model_fields["pref_loss"].description
    assert fields["learning_rate"].metadata["help"] == TrainConfig.model_fields["lr"].description
    with pytest.raises(InputError, match=r"CLOConfig: field 'beta': Input should be greater than 0"):
        CLOConfig(output_dir="x", beta=0)
    with pytest.raises(InputError, match=r"field 'pref_loss'"):
        CLOConfig(output_dir="x", pref_loss="hinge")
    with pytest.raises(InputError, match=r"field 'learning_rate'"):
        CLOConfig(output_dir="x", learning_rate=-1.0)
    (parsed,) = HfArgumentParser(CLOConfig).parse_args_into_dataclasses(
        ["--output_dir", "y", "--method", "sft", "--lam", "0.3", "--pref_loss", "simpo"])
    assert (parsed.method, parsed.lam, parsed.pref_loss) == ("sft", 0.3, "simpo")


def test_records_from_columns_conversational_form_and_row_errors():
    import datasets

    theirs = [{"q": "Why?", "a": "Because.", "swali": "Kwa nini?", "jibu": "Kwa sababu."}] * 2
    got = records_from(theirs, lang="sw", columns={"en_prompt": "q", "en_response": "a", "tgt_prompt": "swali",
                                                   "tgt_response": "jibu"})
    assert [(r.id, r.lang, r.tgt_prompt) for r in got] == [("1", "sw", "Kwa nini?"), ("2", "sw", "Kwa nini?")]

    def turn(role, text):
        return [{"role": role, "content": text}]

    trl = datasets.Dataset.from_list([{"prompt_en": turn("user", "Why?"), "completion_en": turn("assistant", "Because."),
                                       "prompt_sw": turn("user", "Kwa nini?"), "completion_sw": turn("assistant", "Kwa sababu.")}])
    (rec,) = records_from(trl, lang="sw", columns="trl")
    assert (rec.en_prompt, rec.en_response, rec.tgt_prompt, rec.tgt_response) == ("Why?", "Because.", "Kwa nini?", "Kwa sababu.")

    bad = [*_rows(2), {**_rows(3)[2], "tgt_prompt": "  "}]
    with pytest.raises(InputError, match=r"^train_dataset:3: field 'tgt_prompt': empty$"):
        records_from(datasets.Dataset.from_list(bad), lang="sw", name="train_dataset")
    with pytest.raises(InputError, match=r"dataset:1: field 'prompt_sw': expected one 'user' message"):
        records_from([{"prompt_en": turn("user", "a"), "completion_en": turn("assistant", "b"),
                       "prompt_sw": turn("system", "s") + turn("user", "c"), "completion_sw": turn("assistant", "d")}],
                     lang="sw", columns="trl")
    with pytest.raises(InputError, match=r"differs from --lang 'de'"):
        records_from(_rows(2), lang="de")


def test_trainer_behaves_like_a_trainer(tmp_path, tiny_llama):
    """TensorBoard logging, a custom callback, LoRA from a peft config, and resume_from_checkpoint=True."""
    from peft import LoraConfig
    from transformers import TrainerCallback

    from langshift import CLOTrainer

    seen = []

    class Steps(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            seen.append(state.global_step)

    args = _config(tmp_path / "a", report_to=["tensorboard"], eval_steps=1, max_steps=2, save_total_limit=5)
    trainer = CLOTrainer(str(tiny_llama), args=args, train_dataset=_rows(), callbacks=[Steps()],
                         peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    trainer.train()
    assert seen == [1, 2]
    assert list((tmp_path / "a" / "checkpoints").rglob("events.out.tfevents.*"))  # TensorBoard's, under output_dir
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)

    longer = _config(tmp_path / "a", eval_steps=1, max_steps=3, save_total_limit=5)
    resumed = CLOTrainer(str(tiny_llama), args=longer, train_dataset=_rows(),
                         peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    resumed.train(resume_from_checkpoint=True)
    assert resumed.state.global_step == 3
    steps = [m["step"] for m in _metrics(tmp_path / "a" / "checkpoints" / "metrics.jsonl") if "loss" in m]
    assert steps == [1, 2, 3]  # one run: the resumed part continues the file


def test_a_pipeline_method_and_a_model_without_tokenizer_are_clear_errors(tmp_path, tiny_llama):
    from langshift import CLOTrainer
    from langshift.models import load

    with pytest.raises(InputError, match=r"field 'method': 'sft\+dpo' is a pipeline"):
        CLOTrainer(str(tiny_llama), args=_config(tmp_path, method="sft+dpo"), train_dataset=_rows())
    model, _ = load(tiny_llama, dtype="float32")
    with pytest.raises(InputError, match="field 'processing_class'"):
        CLOTrainer(model, args=_config(tmp_path), train_dataset=_rows())


def test_evaluate_and_compare_from_python(tmp_path, tiny_llama):
    from langshift import compare, evaluate

    a = evaluate(str(tiny_llama), lang="sw", tasks=["langpref", "heldout_nll"], limit=6, out=tmp_path / "a")
    evaluate(str(tiny_llama), lang="sw", tasks=["langpref", "heldout_nll"], limit=6, out=tmp_path / "b")
    assert set(a) >= {"meta", "langpref", "heldout_nll"} and set(a["langpref"]) == {"sw", "en"}
    assert json.loads((tmp_path / "a" / "results.json").read_text())["langpref"] == a["langpref"]
    rows = compare(a, tmp_path / "b", resamples=200, name_a="CLO", name_b="SFT")
    assert rows and all(r["diff"] == 0 for r in rows)  # the same model twice
    assert rows[0]["verdict"].startswith("CLO − SFT on ")
    with pytest.raises(InputError, match="not an evaluation directory"):
        compare(tmp_path, tmp_path / "b")


def test_import_is_light_and_help_lists_the_fields():
    """`import langshift` loads neither torch nor transformers; help() on the trainer shows every option
    with its help text."""
    code = "import sys, langshift; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    done = subprocess.run([sys.executable, "-c", "import langshift; help(langshift.CLOTrainer)"], capture_output=True,
                          text=True, env={**os.environ, "PAGER": "cat", "TERM": "dumb"}, check=True)
    assert "lam (default 0.5): Weight of the NLL term (paper: 0.5)." in done.stdout
    assert "pref_loss (default 'sigmoid')" in done.stdout and "peft_config" in done.stdout
