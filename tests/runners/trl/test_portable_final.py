"""final/ loads anywhere with plain transformers/peft: it names the base model as the user's host
does (even when the runner read it elsewhere, as in a container), and holds its tokenizer, chat
template and generation config. Named chat templates are applied and checked by the runner."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from trl_helpers import SHORT, make_run, run_cli

from aligntune.core.chat_templates import named_template
from aligntune.core.errors import UserInputError
from aligntune.core.loader import load_recipe

BINARY = {".safetensors", ".bin", ".pt", ".pth"}
PROCESS_STATE = {".aligntune-run"}
"""The lock's holder record names the live process's own command line: not an output."""


def text_files(run_dir: Path) -> dict[str, str]:
    """Every text file a run wrote (weights, pickles and the lock record left out)."""
    return {
        str(p.relative_to(run_dir)): p.read_text(encoding="utf-8")
        for p in run_dir.rglob("*")
        if p.is_file() and p.suffix not in BINARY and p.name not in PROCESS_STATE
    }


def generate(final: Path, model: object) -> str:
    """A greedy reply to one question, with the tokenizer and template saved in `final`."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(final)
    turns = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(
        turns, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**inputs, max_new_tokens=8, do_sample=False)  # type: ignore[attr-defined]
    return str(tokenizer.decode(out[0][inputs["input_ids"].shape[1] :]))


def check_generation_config(final: Path) -> None:
    """The stop token and pad of the tokenizer saved beside the weights."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(final)
    config = json.loads((final / "generation_config.json").read_text())
    stops = config["eos_token_id"]
    assert tokenizer.eos_token_id in (stops if isinstance(stops, list) else [stops])
    assert config["pad_token_id"] == tokenizer.pad_token_id
    assert (final / "chat_template.jinja").is_file() and (final / "tokenizer.json").is_file()


@pytest.mark.training
def test_lora_final_names_the_host_model_and_loads_with_peft(
    tiny_recipe: Callable[..., Path], tiny_dir: Path, tmp_path: Path
) -> None:
    """The runner reads its inputs from another folder (a container's mounts) and is handed the
    host paths: the run directory names only those, and final/ loads once that folder is gone."""
    from peft import AutoPeftModelForCausalLM

    recipe = tiny_recipe("sft", **SHORT["sft"])
    elsewhere = tmp_path / "mounted"
    shutil.copytree(tiny_dir, elsewhere)
    run_dir = tmp_path / "run"
    result = run_cli(
        "run",
        str(elsewhere / recipe.name),
        "--output",
        str(run_dir),
        "--reference",
        f"model.name_or_path={elsewhere / 'model'}",
        "--reference",
        f"data.train.path={elsewhere / 'data' / 'sft.jsonl'}",
        "--host-path",
        f"model.name_or_path={tiny_dir / 'model'}",
        "--host-path",
        f"data.train.path={tiny_dir / 'data' / 'sft.jsonl'}",
        "--host-path",
        f"output.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    shutil.rmtree(elsewhere)
    written = text_files(run_dir)
    assert [name for name, text in written.items() if str(elsewhere) in text] == []
    resolved = yaml.safe_load(written["recipe.resolved.yaml"])
    assert resolved["model"]["name_or_path"] == str(tiny_dir / "model")
    assert resolved["data"]["train"]["path"] == str(tiny_dir / "data" / "sft.jsonl")
    adapter = json.loads(written["final/adapter_config.json"])
    assert adapter["base_model_name_or_path"] == str(tiny_dir / "model")
    assert not (run_dir / "final" / "training_args.bin").exists()
    final = run_dir / "final"
    model = AutoPeftModelForCausalLM.from_pretrained(final)
    assert generate(final, model)
    check_generation_config(final)


@pytest.mark.training
def test_full_final_loads_with_transformers(
    tiny_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    recipe = tiny_recipe("sft", model={"peft": {"method": "full"}}, **SHORT["sft"])
    make_run(recipe, tmp_path / "run").train()
    final = tmp_path / "run" / "final"
    model = AutoModelForCausalLM.from_pretrained(final)
    assert generate(final, model)
    check_generation_config(final)


@pytest.mark.training
def test_a_named_template_is_trained_and_saved(
    tiny_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    """`chat_template: chatml` trains with ChatML (not the text "chatml"), assistant-only."""
    recipe = tiny_recipe(
        "sft",
        model={"chat_template": "chatml"},
        algorithm={"name": "sft", "assistant_only_loss": True},
        **SHORT["sft"],
    )
    run = make_run(recipe, tmp_path / "run")
    chatml = named_template("chatml")
    assert chatml is not None and run.pieces.tokenizer.chat_template == chatml.text
    run.train()
    final = tmp_path / "run" / "final"
    assert (final / "chat_template.jinja").read_text(encoding="utf-8") == chatml.text
    check_generation_config(final)


def test_the_runner_refuses_a_named_template_the_tokenizer_lacks(
    tiny_recipe: Callable[..., Path], tiny_dir: Path
) -> None:
    """What `validate` checks from a local folder's files, the runner checks with the tokenizer
    it loaded (the only check a hub model gets)."""
    from transformers import AutoTokenizer

    from aligntune.runners.common.models import prepare_tokenizer

    recipe = load_recipe(tiny_recipe("sft", model={"chat_template": "llama-3"}))
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir / "model")
    with pytest.raises(UserInputError, match=r"'llama-3' writes <\|begin_of_text\|>"):
        prepare_tokenizer(recipe, tokenizer)
