"""Named chat templates and the render check: each template trains exactly the assistant's reply
and its end-of-turn token; a recipe whose template would train anything else is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from aligntune.core import sections
from aligntune.core.chat_templates import TEMPLATE_NAMES, TEMPLATES, parse_problem
from aligntune.core.errors import RecipeError
from aligntune.core.loader import recipe_from_dict
from aligntune.core.model_folder import TokenizerFacts, folder_facts
from aligntune.core.schema import attribute_docstrings
from aligntune.core.template_check import (
    render,
    render_problems,
    sample_lines,
    stop_token,
)

TINY = Path(__file__).resolve().parents[2] / "recipes" / "tiny"
TURNS = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Capital of Peru?"},
    {"role": "assistant", "content": "Lima."},
    {"role": "user", "content": "And Kenya?"},
    {"role": "assistant", "content": "Nairobi."},
]


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.name)
def test_a_named_template_trains_each_reply_and_its_end_of_turn(template) -> None:  # type: ignore[no-untyped-def]
    assert parse_problem(template.text) is None
    rendered = render(template.text, TURNS, TokenizerFacts(None, None), "row")
    trained = [rendered.text[a:b] for a, b in rendered.trained]
    assert trained == [f"Lima.{template.end_of_turn}", f"Nairobi.{template.end_of_turn}"]
    for turn in TURNS:
        assert turn["content"] in rendered.text
    assert template.end_of_turn in template.special_tokens
    assert all(token in rendered.text for token in template.special_tokens)


WITHOUT_MARKERS = {
    "plain": "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}<|im_end|>\n{% endfor %}",
    "reply-marked-stop-outside": (
        "{% for m in messages %}{{ m['role'] }}: "
        "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}{% endgeneration %}"
        "<|im_end|>{% else %}{{ m['content'] }}<|im_end|>{% endif %}\n{% endfor %}"
    ),
    "user-marked": (
        "{% for m in messages %}"
        "{% if m['role'] == 'user' %}{% generation %}{{ m['content'] }}<|im_end|>"
        "{% endgeneration %}{% else %}{{ m['content'] }}<|im_end|>{% endif %}{% endfor %}"
    ),
}
"""Templates whose `{% generation %}` markers are missing or wrong: TRL's assistant-only loss
would train nothing, or the wrong tokens; aligntune's turn-by-turn spans do not read them."""


@pytest.mark.parametrize("template", WITHOUT_MARKERS.values(), ids=list(WITHOUT_MARKERS))
def test_templates_without_right_markers_train_each_reply_and_its_stop(template: str) -> None:
    rendered = render(template, TURNS, TokenizerFacts(None, None), "row")
    trained = [rendered.text[a:b] for a, b in rendered.trained]
    assert [t.removeprefix("assistant: ") for t in trained] == [
        "Lima.<|im_end|>",
        "Nairobi.<|im_end|>",
    ]


def test_the_field_doc_names_every_template() -> None:
    doc = attribute_docstrings(sections)["ModelSettings"]["chat_template"]
    assert [name for name in TEMPLATE_NAMES if name not in doc] == []


def sft(tmp_path: Path, template: str | None, assistant_only: bool = True, **model: object):  # type: ignore[no-untyped-def]
    """A tiny SFT recipe on a copy of the tiny model and data in tmp_path."""
    shutil.copytree(TINY / "model", tmp_path / "model", dirs_exist_ok=True)
    shutil.copytree(TINY / "data", tmp_path / "data", dirs_exist_ok=True)
    settings = {"name_or_path": "./model", **model}
    if template is not None:
        settings["chat_template"] = template
    return recipe_from_dict(
        {
            "algorithm": {"name": "sft", "assistant_only_loss": assistant_only},
            "model": settings,
            "data": {"train": {"path": "./data/sft.jsonl"}},
        },
        source="recipe.yaml",
        base_dir=tmp_path,
    )


def test_an_unknown_name_is_refused_with_the_valid_names(tmp_path: Path) -> None:
    with pytest.raises(RecipeError) as caught:
        sft(tmp_path, "Llama3")
    assert "unknown chat template name 'Llama3'" in str(caught.value)
    assert ", ".join(TEMPLATE_NAMES) in str(caught.value)


def test_the_tiny_model_passes_and_show_sample_marks_the_reply(tmp_path: Path) -> None:
    recipe = sft(tmp_path, "chatml")
    assert render_problems(recipe, folder_facts(tmp_path / "model"), "./model") == []
    lines = sample_lines(recipe)
    assert "rendered with chat template 'chatml'" in lines[0]
    assert "[[The capital of France is Paris.<|im_end|>]]" in lines[1:]
    assert "<|im_start|>user" in lines[1:]


def test_missing_tokens_are_read_from_the_folder(tmp_path: Path) -> None:
    recipe = sft(tmp_path, "gemma", assistant_only=False)
    facts = folder_facts(tmp_path / "model")
    assert facts.eos_token == "<|im_end|>" and facts.tokens and "<|im_start|>" in facts.tokens
    (problem,) = render_problems(recipe, facts, "./model")
    assert "'gemma' writes <bos>, <start_of_turn>, <end_of_turn>" in problem


def test_the_stop_token_must_be_trained(tmp_path: Path) -> None:
    """The tokenizer's eos (from tokenizer_config.json) is what must follow the reply."""
    no_stop = "{% for m in messages %}{{ m['content'] }}</end>\n{% endfor %}"
    recipe = sft(tmp_path, no_stop, assistant_only=False)
    (problem,) = render_problems(recipe, folder_facts(tmp_path / "model"), "./model")
    assert "does not train the stop token '<|im_end|>'" in problem
    config = json.loads((tmp_path / "model" / "tokenizer_config.json").read_text())
    config["eos_token"] = "</end>"  # now the template does end the reply with it
    (tmp_path / "model" / "tokenizer_config.json").write_text(json.dumps(config))
    assert render_problems(recipe, folder_facts(tmp_path / "model"), "./model") == []


def test_a_base_model_whose_eos_differs_from_the_turn_end_passes(tmp_path: Path) -> None:
    """A base model (eos `<|endoftext|>`) with its ChatML template: the template closes each
    reply with `<|im_end|>`, a special token, which is what the model learns to stop on."""
    recipe = sft(tmp_path, None, assistant_only=False)
    config = json.loads((tmp_path / "model" / "tokenizer_config.json").read_text())
    config["eos_token"] = "<|endoftext|>"
    (tmp_path / "model" / "tokenizer_config.json").write_text(json.dumps(config))
    facts = folder_facts(tmp_path / "model")
    assert render_problems(recipe, facts, "./model") == []
    assert facts.chat_template is not None
    assert stop_token(None, facts.chat_template, facts) == "<|im_end|>"


def test_a_hub_model_is_checked_in_the_runner() -> None:
    recipe = recipe_from_dict(
        {
            "algorithm": {"name": "sft"},
            "model": {"name_or_path": "Qwen/Qwen3-0.6B", "chat_template": "qwen"},
            "data": {"train": {"path": "trl-lib/Capybara"}},
        },
        source="recipe.yaml",
    )
    (line,) = sample_lines(recipe)
    assert "hub model" in line and "the runner renders and checks" in line
