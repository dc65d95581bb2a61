"""The feedback formats (KTO's unpaired data) as users bring them: detected, mapped, in JSON Lines
and CSV; the refusals are in tests/broken/cases/feedback.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aligntune.core.algorithms import get_algorithm
from aligntune.core.data import detect_format, resolve_format
from aligntune.core.data_check import check_local_data
from aligntune.core.errors import DataError, UserInputError
from aligntune.core.loader import recipe_from_dict
from aligntune.core.preflight import check_inputs

KTO = get_algorithm("kto").data_formats
CHAT = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]


def test_prompt_completion_label_rows_are_feedback_as_text_or_turns(write_jsonl) -> None:
    text = [
        {"prompt": "Say hi.", "completion": "Hi!", "label": True},
        {"prompt": "Say hi.", "completion": "Go away.", "label": False},
    ]
    summary = check_local_data(write_jsonl("text.jsonl", text), {}, "auto", KTO)
    assert (summary.format, summary.rows) == ("feedback", 2)
    assert summary.columns == {"prompt", "completion", "label"}
    turns = [
        {"prompt": CHAT[:1], "completion": CHAT[1:], "label": label} for label in (True, False)
    ]
    assert check_local_data(write_jsonl("turns.jsonl", turns), {}, "auto", KTO).format == "feedback"


def test_conversations_with_a_label_are_feedback_messages(write_jsonl) -> None:
    system = {"role": "system", "content": "Be kind."}
    rows = [{"messages": CHAT, "label": True}, {"messages": [system, *CHAT], "label": False}]
    summary = check_local_data(write_jsonl("d.jsonl", rows), {}, "auto", KTO)
    assert summary.format == "feedback_messages"


def test_a_label_column_of_another_name_is_mapped(write_jsonl) -> None:
    rows = [
        {"question": "q", "answer": "a", "thumbs_up": True},
        {"question": "q", "answer": "b", "thumbs_up": False},
    ]
    mapping = {"prompt": "question", "completion": "answer", "label": "thumbs_up"}
    summary = check_local_data(write_jsonl("d.jsonl", rows), mapping, "auto", KTO)
    assert summary.format == "feedback" and "label" in summary.columns


def test_csv_labels_in_every_spelling_datasets_reads_as_booleans(tmp_path) -> None:
    lines = ["prompt,completion,label"] + [
        f"p,c{i},{word}" for i, word in enumerate(("true", "True", "TRUE", "false", "False"))
    ]
    path = tmp_path / "d.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert check_local_data(path, {}, "auto", KTO).rows == 5


def test_detection_puts_the_label_formats_first() -> None:
    assert detect_format({"messages", "label"}, (*KTO, "messages")) == "feedback_messages"
    assert detect_format({"prompt", "completion", "label"}, (*KTO, "prompt_completion")) == (
        "feedback"
    )


def test_sft_reads_rated_rows_only_when_told_to() -> None:
    # Read as prompt/completion, the undesirable answers would be trained on too.
    sft = get_algorithm("sft").data_formats
    rated = {"prompt", "completion", "label"}
    assert detect_format(rated, sft) == "prompt_completion"
    with pytest.raises(DataError, match="the label column rates each completion"):
        resolve_format(rated, "auto", sft, "d.jsonl")
    assert resolve_format(rated, "prompt_completion", sft, "d.jsonl") == "prompt_completion"
    assert resolve_format({"messages", "label"}, "messages", sft, "d.jsonl") == "messages"


def test_a_mixture_needs_both_kinds_together_not_in_each_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """One file of desirable rows and one of undesirable rows is a common KTO layout."""
    tiny = Path(__file__).resolve().parents[2] / "recipes" / "tiny"
    good = {"prompt": "Say hi.", "completion": "Hi!", "label": True}
    files = {"pos": [good, good], "pos2": [good], "neg": [{**good, "label": False}]}
    for name, rows in files.items():
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    def recipe(*names: str):  # type: ignore[no-untyped-def]
        return recipe_from_dict(
            {
                "algorithm": {"name": "kto"},
                "model": {"name_or_path": str(tiny / "model")},
                "data": {"train": [{"path": f"./{f}.jsonl"} for f in names]},
                "training": {"batch_size": 2},
            },
            source="recipe.yaml",
            base_dir=tmp_path,
        )

    assert set(check_inputs(recipe("pos", "neg"))) == {"data.train.0", "data.train.1"}
    with pytest.raises(UserInputError) as caught:
        check_inputs(recipe("pos", "pos2"))
    assert str(caught.value).startswith(
        "data.train (the sources together): label: all 3 rows are desirable (label true)"
    )
