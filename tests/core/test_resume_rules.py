"""Which recipe changes a resume accepts, and how each refused one is said."""

from __future__ import annotations

from aligntune.core.resume_rules import leaves, recipe_changes

RECIPE = {
    "name": "tiny-sft",
    "backend": "auto",
    "model": {"name_or_path": "/a/model", "peft": {"r": 8}},
    "data": {"train": {"path": "/a/data.jsonl"}},
    "training": {"learning_rate": 0.005, "logging_steps": 1, "report_to": []},
    "rewards": [{"function": "exact_match", "weight": 1.0}],
    "output": {"dir": "/a/run"},
}
INPUTS = {"model.name_or_path": "files:m", "data.train.path": "sha256:d"}


def changed(**sections: dict) -> dict:
    return {**RECIPE, **sections}


def test_leaves_name_each_field_and_each_listed_section() -> None:
    found = leaves(RECIPE)
    assert found["model.peft.r"] == 8 and found["rewards.0.function"] == "exact_match"
    assert found["training.report_to"] == []


def test_cadence_names_backend_and_output_may_change() -> None:
    current = changed(
        name="renamed",
        backend="trl",
        training={"learning_rate": 0.005, "logging_steps": 5, "report_to": ["tensorboard"]},
        output={"dir": "/b/run"},
    )
    assert recipe_changes(RECIPE, current, INPUTS, INPUTS) == []


def test_a_moved_input_with_the_same_content_is_the_same_run() -> None:
    current = changed(data={"train": {"path": "/b/data.jsonl"}}, model={
        "name_or_path": "/b/model", "peft": {"r": 8}})  # fmt: skip
    assert recipe_changes(RECIPE, current, INPUTS, INPUTS) == []
    edited = {**INPUTS, "data.train.path": "sha256:e"}
    assert recipe_changes(RECIPE, current, INPUTS, edited) == [
        "data.train.path: /a/data.jsonl, now /b/data.jsonl holds other content than when the run "
        "began"
    ]


def test_every_other_change_is_named_with_both_values() -> None:
    current = changed(
        training={"learning_rate": 0.001, "logging_steps": 1, "report_to": []},
        rewards=[{"function": "contains", "weight": 1.0}, {"function": "exact_match"}],
    )
    assert recipe_changes(RECIPE, current, INPUTS, INPUTS) == [
        "rewards.0.function: was exact_match, now contains",
        "rewards.1.function: was (not set), now exact_match",
        "training.learning_rate: was 0.005, now 0.001",
    ]


def test_a_run_that_recorded_no_digests_compares_its_inputs_by_path() -> None:
    current = changed(data={"train": {"path": "/b/data.jsonl"}})
    assert recipe_changes(RECIPE, current, None, INPUTS) == [
        "data.train.path: was /a/data.jsonl, now /b/data.jsonl"
    ]
