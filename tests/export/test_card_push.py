"""The model card (written by training, completed with evaluation rows), `langshift push` up to the
upload call, the Ollama Modelfile and the demo's closing hint."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from langshift.cli import app


def _row(task, eval_lang, metric, value, stderr=0.05, n=24, **kw):
    return {"model": "tiny", "lang": "sw", "method": "clo", "size": 4, "trainable": "attention", "nll": "target",
            "task": task, "eval_lang": eval_lang, "metric": metric, "value": value, "stderr": stderr, "n": n, **kw}


ROWS = [
    _row("fidelity", "target", "response_pass_rate", 0.625),
    _row("fidelity", "target", "line_pass_rate", 0.7),
    _row("fidelity", "en", "response_pass_rate", 0.958, 0.04),
    _row("belebele", "target", "accuracy", 0.333, 0.096),
    _row("mmmlu", "en", "accuracy", 0.25, 0.088),
]


@pytest.fixture(scope="module")
def trained(tiny_llama, tmp_path_factory):
    """A real (tiny, one-step) CLO training output, from records built as the data builder writes them."""
    from langshift.data.seed import demo_english
    from langshift.files import write_jsonl
    from langshift.train.config import TrainConfig
    from langshift.train.recipe import train

    root = tmp_path_factory.mktemp("card")
    rows = [{**r, "lang": "sw", "meta": {**r["meta"], "source": "oasst1", "translator": "hf",
                                          "translator_model": "facebook/m2m100_418M"}} for r in demo_english("sw")[:5]]
    write_jsonl(root / "records.jsonl", rows)
    return train(TrainConfig(method="clo", model=str(tiny_llama), data=str(root / "records.jsonl"), lang="sw",
                             out=str(root / "clo-sw"), max_steps=1, batch_size=2, max_length=64, progress=False,
                             cache_dir=str(root / "cache")))


def test_training_writes_a_card_the_hub_client_reads(trained):
    from huggingface_hub import ModelCard

    card = ModelCard.load(trained / "README.md")
    assert set(card.data.tags) >= {"langshift", "cross-lingual-optimization", "clo"}
    assert card.data.language == ["sw", "en"]
    assert card.data.datasets == ["OpenAssistant/oasst1"]
    assert card.data.base_model is None  # a local directory is no hub id
    assert card.data.eval_results is None  # not evaluated yet
    record = yaml.safe_load((trained / "config.yaml").read_text())
    share = record["stages"][-1]["trainable"]
    assert f"{share['trainable']:,} of {share['total']:,}" in card.text
    assert "`hf` / `facebook/m2m100_418M`" in card.text and "`lam=0.5`" in card.text and "`beta=0.1`" in card.text
    assert "Not evaluated yet" in card.text


def test_card_with_evaluation_rows_has_a_valid_model_index(trained):
    from huggingface_hub import ModelCard

    from langshift.card import write_model_card

    card = ModelCard.load(write_model_card(trained, ROWS))
    results = card.data.eval_results
    assert len(results) == len(ROWS)
    by_key = {(r.dataset_type, r.dataset_config, r.metric_type): r.metric_value for r in results}
    assert by_key[("langshift/fidelity", "sw", "response_pass_rate")] == 0.625
    assert by_key[("openai/MMMLU", "en", "accuracy")] == 0.25
    assert card.data.model_name == "clo-sw"
    table = card.text.split("## Evaluation", 1)[1]
    assert "| Language fidelity | Swahili | Response pass (%) | 62.5 | 5.0 | 24 |" in table
    assert "| Knowledge (MMMLU) | English | Accuracy (%) | 25.0 | 8.8 | 24 |" in table


def test_card_of_a_multilingual_model_lists_its_languages_and_each_row_in_its_own(tmp_path):
    """A model trained with `--lang sw,de --data sw.jsonl,de.jsonl`: both languages in the metadata and the
    text, the sources of both files, and each result row under the language it was measured in."""
    from huggingface_hub import ModelCard

    from langshift.card import render_model_card
    from langshift.files import write_jsonl

    for lang, source in (("sw", "oasst1"), ("de", "hf:someone/german-chat")):
        write_jsonl(tmp_path / f"{lang}.jsonl", [{"id": "a", "meta": {"source": source, "translator": "hf"}}])
    record = {"config": {"method": "clo", "model": "smollm2", "lang": "sw,de", "out": "runs/x",
                         "data": f"{tmp_path / 'sw.jsonl'},{tmp_path / 'de.jsonl'}"}, "stages": [{}]}
    rows = [_row("fidelity", "target", "response_pass_rate", 0.6, lang="de", trained_langs="sw+de"),
            _row("fidelity", "target", "response_pass_rate", 0.5, trained_langs="sw+de"),
            _row("fidelity", "en", "response_pass_rate", 1.0, trained_langs="sw+de")]
    card = ModelCard(render_model_card(record, rows))
    assert card.data.language == ["sw", "de", "en"]
    assert card.data.datasets == ["OpenAssistant/oasst1", "someone/german-chat"]
    assert {(r.dataset_config, r.metric_value) for r in card.data.eval_results} == {("de", 0.6), ("sw", 0.5), ("en", 1.0)}
    assert "taught to answer in Swahili and German" in card.text
    table = card.text.split("## Evaluation", 1)[1]
    assert table.index("| Swahili | Response pass (%) | 50.0") < table.index("| German | Response pass (%) | 60.0")


def test_card_metadata_for_the_embedded_model_names_its_hub_id_and_license():
    from huggingface_hub import ModelCard

    from langshift.card import render_model_card

    record = {"config": {"method": "sft", "model": "smollm2", "lang": "sw", "data": "nowhere", "out": "runs/x"},
              "stages": [{}]}
    card = ModelCard(render_model_card(record, None))
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert card.data.license == "apache-2.0"


def test_card_refuses_rows_of_several_models(trained):
    from langshift.card import write_model_card

    with pytest.raises(ValueError, match="2 models"):
        write_model_card(trained, [*ROWS, {**ROWS[0], "method": "sft"}])


def test_card_of_a_directory_without_a_training_record_is_a_located_error(tmp_path):
    from langshift.card import write_model_card
    from langshift.files import InputError

    with pytest.raises(InputError, match="config.yaml"):
        write_model_card(tmp_path)


# -------------------------------------------------------------------------------------------- push


def test_push_plans_the_upload_and_gets_as_far_as_the_hub(trained, monkeypatch):
    """Everything up to the network: the plan (files, ignore patterns, repo) is checked, then the real
    `huggingface_hub` client is called with it under HF_HUB_OFFLINE=1, where it raises at its HTTP
    layer, naming the endpoint it was about to call: create_repo, then upload_folder, whose first call
    is the Hub's validation of our README.md front matter."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import OfflineModeIsEnabled

    from langshift.export.hub import create_repo_args, plan_upload, upload, upload_folder_args

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (trained / "README.md").unlink()
    plan = plan_upload(trained, "someone/clo-sw")
    assert (trained / "README.md").is_file()  # the card is written when missing
    assert "model.safetensors" in plan.files and "README.md" in plan.files and "config.yaml" in plan.files
    assert (trained / "checkpoints").is_dir() and not any(f.startswith("checkpoints/") for f in plan.files)
    assert create_repo_args(plan) == {"repo_id": "someone/clo-sw", "private": False, "exist_ok": True, "repo_type": "model"}
    with pytest.raises(OfflineModeIsEnabled, match="repos/create"):
        upload(plan)
    with pytest.raises(OfflineModeIsEnabled, match="validate-yaml"):
        HfApi().upload_folder(**upload_folder_args(plan))


def test_push_cli_reports_the_failed_upload(trained, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(app, ["push", str(trained), "--repo", "someone/clo-sw"])
    assert result.exit_code == 2
    assert "uploading" in result.output and "model.safetensors" in result.output
    assert "upload to someone/clo-sw failed" in result.output and "offline" in result.output
    bad = CliRunner().invoke(app, ["push", str(trained), "--repo", "no-owner"])
    assert bad.exit_code == 2 and "OWNER/NAME" in bad.output


# --------------------------------------------------------------------------------------- modelfile


def test_modelfile_for_chatml_carries_template_stops_and_the_default_system(trained):
    from langshift.export.modelfile import render_modelfile
    from langshift.models import load

    _, tok = load(trained, dtype="float32")
    text = render_modelfile("clo-sw.gguf", tok)
    assert "FROM ./clo-sw.gguf" in text
    assert 'PARAMETER stop "<|im_end|>"' in text and "{{ .Content }}<|im_end|>" in text
    assert "SYSTEM" not in text  # the tiny ChatML template inserts no system message of its own
    tok.chat_template = ("{% if messages[0]['role'] != 'system' %}<|im_start|>system\nBe brief.<|im_end|>\n{% endif %}"
                         + tok.chat_template)
    assert 'SYSTEM """Be brief."""' in render_modelfile("clo-sw.gguf", tok)


def test_export_cli_writes_gguf_and_modelfile(trained, tmp_path):
    result = CliRunner().invoke(app, ["export", str(trained), "--gguf", str(tmp_path / "clo-sw.gguf"), "--type", "q8_0"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "clo-sw.gguf").stat().st_size > 0 and (tmp_path / "clo-sw.Modelfile").is_file()
    assert "ollama create clo-sw -f" in result.output
    bad = CliRunner().invoke(app, ["export", str(trained), "--gguf", str(tmp_path / "x.gguf"), "--type", "q4"])
    assert bad.exit_code == 2 and "f16, q8_0" in bad.output


# ------------------------------------------------------------------------------------------ demo


def _experiment(tmp_path, trained, scores: dict):
    """An experiment directory as `langshift run` leaves it: experiment.json naming the train stages,
    results.json with fidelity rows. Each size's training output is a copy of `trained`."""
    import shutil

    stages = []
    for method, size in scores:
        d = tmp_path / "train" / f"tiny-sw-{method}-{size}-attention-target-0123456789"
        shutil.copytree(trained, d, ignore=shutil.ignore_patterns("checkpoints"))
        record = yaml.safe_load((d / "config.yaml").read_text())
        record["config"].update(method=method, limit=size)
        (d / "config.yaml").write_text(yaml.safe_dump(record))
        stages.append({"kind": "train", "label": d.name.rsplit("-", 1)[0], "dir": str(d), "done": True})
    rows = [_row("fidelity", "target", "response_pass_rate", v, method=m, size=s) for (m, s), v in scores.items()]
    (tmp_path / "experiment.json").write_text(json.dumps({"experiment": {}, "stages": stages}))
    (tmp_path / "results.json").write_text(json.dumps({"experiment": "x", "rows": rows}))
    return tmp_path


def test_demo_hint_names_the_clo_model_with_the_best_fidelity(trained, tmp_path):
    from langshift.export.best import best_model, next_steps

    root = _experiment(tmp_path, trained, {("clo", 2): 0.75, ("clo", 4): 0.5, ("sft", 4): 0.9})
    best = best_model(root)
    assert best.model_dir.name.startswith("tiny-sw-clo-2-") and best.fidelity == 0.75
    hint = next_steps(root)
    assert f"langshift chat {best.model_dir} --compare {best.base}" in hint
    assert f"langshift export {best.model_dir} --gguf" in hint and "75.0%" in hint
