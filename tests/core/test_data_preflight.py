"""Host-side data checks: missing/empty files, every row, columns, preference pairs, formats,
parquet footers, tokenizer files."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from aligntune.core.data import detect_format
from aligntune.core.data_check import DataSummary, check_local_data, file_identity, sample_rows
from aligntune.core.data_rows import MAX_PROBLEMS
from aligntune.core.errors import DataError, UserInputError
from aligntune.core.loader import recipe_from_dict
from aligntune.core.parquet import parquet_columns
from aligntune.core.preflight import check_inputs
from aligntune.core.sections import DataSource

SFT = ("messages", "prompt_completion", "alpaca", "text")


def test_bad_jsonl_line_is_reported_with_its_number(tmp_path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a"}\n{"text": "b"}\n{"text": "c",}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.jsonl:3: invalid JSON"):
        check_local_data(path, {}, "auto", SFT)
    for name, deep in (
        ("deep.jsonl", '{"text": "a"}\n' + "[" * 100_000),
        ("deep.json", "[" * 100_000),
    ):
        (tmp_path / name).write_text(deep, encoding="utf-8")
        with pytest.raises(DataError, match=r"deep\.jsonl?:\d: JSON nested too deeply to read"):
            check_local_data(tmp_path / name, {}, "auto", SFT)


def test_an_unreadable_file_is_named(write_jsonl, monkeypatch) -> None:
    path = write_jsonl("d.jsonl", [{"text": "a"}])

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", refuse)  # chmod does not stop root, who runs CI
    with pytest.raises(DataError, match=r"d\.jsonl: cannot read the data file \(Permission denied"):
        check_local_data(path, {}, "auto", SFT)


def test_empty_and_missing_files(tmp_path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="empty"):
        check_local_data(empty, {}, "auto", SFT)
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="no rows"):
        check_local_data(blank, {}, "auto", SFT)
    with pytest.raises(DataError, match="not found"):
        check_local_data(tmp_path / "nope.jsonl", {}, "auto", SFT)


def test_missing_columns_list_what_was_found_and_needed(write_jsonl) -> None:
    path = write_jsonl("p.jsonl", [{"question": "q", "good": "a", "bad": "b"}])
    with pytest.raises(DataError) as caught:
        check_local_data(path, {}, "auto", ("preference",))
    message = str(caught.value)
    assert "columns found: bad, good, question" in message
    assert "preference: chosen, rejected" in message


def test_column_mapping_renames_and_checks_sources(write_jsonl) -> None:
    path = write_jsonl("p.jsonl", [{"question": "q", "good": "a", "bad": "b"}])
    mapping = {"prompt": "question", "chosen": "good", "rejected": "bad"}
    summary = check_local_data(path, mapping, "auto", ("preference",))
    assert summary.format == "preference"
    with pytest.raises(DataError, match=r"mapped column.*chosen -> best"):
        check_local_data(path, {**mapping, "chosen": "best"}, "auto", ("preference",))


def test_identical_chosen_and_rejected_is_an_error(write_jsonl) -> None:
    rows = [
        {"prompt": "p", "chosen": "a", "rejected": "b"},
        {"prompt": "p", "chosen": "x", "rejected": "x"},
    ]
    with pytest.raises(DataError, match=r"p\.jsonl:2: chosen and rejected are identical"):
        check_local_data(write_jsonl("p.jsonl", rows), {}, "auto", ("preference",))


def test_csv_json_list_and_parquet(tmp_path) -> None:
    csv_file = tmp_path / "d.csv"
    csv_file.write_text("instruction,input,output\nsay hi,,hi\n", encoding="utf-8")
    assert check_local_data(csv_file, {}, "auto", SFT).format == "alpaca"
    json_file = tmp_path / "d.json"
    json_file.write_text('[{"prompt": "a", "completion": "b"}]', encoding="utf-8")
    assert check_local_data(json_file, {}, "auto", SFT).format == "prompt_completion"
    bad_parquet = tmp_path / "d.parquet"
    bad_parquet.write_text("not parquet", encoding="utf-8")
    with pytest.raises(DataError, match="not a parquet file"):
        check_local_data(bad_parquet, {}, "auto", SFT)
    text_file = tmp_path / "d.txt"
    text_file.write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match=r"unsupported data file type '\.txt'"):
        check_local_data(text_file, {}, "auto", SFT)


def test_declared_format_must_suit_the_algorithm(write_jsonl) -> None:
    path = write_jsonl("t.jsonl", [{"text": "hello"}])
    with pytest.raises(DataError, match="format 'text' cannot train this algorithm"):
        check_local_data(path, {}, "text", ("preference",))


def test_detection_prefers_the_most_specific_format() -> None:
    both = {"prompt", "completion", "chosen", "rejected"}
    assert detect_format(both, ("preference", "prompt")) == "preference"
    assert detect_format({"prompt", "answer"}, ("prompt",)) == "prompt"
    assert detect_format({"messages", "text"}, SFT) == "messages"
    assert detect_format({"answer"}, SFT) is None


def test_check_inputs_reports_model_and_data_problems_together(make_recipe, tmp_path) -> None:
    recipe = make_recipe()
    recipe["model"]["name_or_path"] = str(tmp_path / "no-model")
    recipe["data"]["train"]["path"] = str(tmp_path / "no-data.jsonl")
    with pytest.raises(UserInputError) as caught:
        check_inputs(recipe_from_dict(recipe))
    lines = str(caught.value).splitlines()
    assert lines[0].startswith("model.name_or_path: model folder")
    assert lines[1].startswith("data.train:") and "not found" in lines[1]


def test_hub_references_are_left_to_the_runner(make_recipe) -> None:
    recipe = make_recipe()
    recipe["model"]["name_or_path"] = "Qwen/Qwen3-0.6B"
    recipe["data"]["train"]["path"] = "tatsu-lab/alpaca"
    assert check_inputs(recipe_from_dict(recipe)) == {}


def test_a_missing_distributed_config_file_is_named_before_anything_starts(tmp_path) -> None:
    recipe = recipe_from_dict(
        {
            "algorithm": {"name": "sft"},
            "model": {"name_or_path": "org/model"},
            "data": {"train": {"path": "org/data"}},
            "distributed": {"strategy": "deepspeed", "config_file": "ds_config.yaml"},
        },
        base_dir=tmp_path,
    )
    with pytest.raises(UserInputError, match=r"distributed.config_file: .*ds_config.yaml is not"):
        check_inputs(recipe)
    (tmp_path / "ds_config.yaml").write_text("zero_optimization: {stage: 2}\n")
    with pytest.raises(UserInputError, match=r"ds_config.yaml is not a DeepSpeed JSON config"):
        check_inputs(recipe)  # transformers reads the file with json.load, whatever its name
    (tmp_path / "ds_config.yaml").write_text('{"zero_optimization": {"stage": 2}}\n')
    check_inputs(recipe)
    assert recipe.local_references()["distributed.config_file"] == tmp_path / "ds_config.yaml"


def test_sound_files_pass_whatever_their_line_endings_and_byte_order_mark(tmp_path) -> None:
    rows = ['{"prompt": "p", "completion": "c", "n": 1}', '{"prompt": "q", "completion": "d"}']
    for name, data in {
        "crlf.jsonl": ("\r\n".join(rows) + "\r\n").encode(),
        "bom.jsonl": b"\xef\xbb\xbf" + "\n\n".join(rows).encode(),  # blank lines, no final newline
        "bom.csv": b"\xef\xbb\xbfprompt,completion\r\np,c\r\n",
        "long.csv": b"prompt,completion\np," + b"c" * 200_000 + b"\n",  # past csv's 128 KB
        "list.json": ("\ufeff[\n" + ",\n".join(rows) + "\n]\n").encode(),
    }.items():
        (tmp_path / name).write_bytes(data)
        assert check_local_data(tmp_path / name, {}, "auto", SFT).format == "prompt_completion"


def test_an_empty_system_prompt_and_a_tool_call_without_text_are_sound(write_jsonl) -> None:
    call = {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "f"}}]}
    turns = [{"role": "system", "content": ""}, {"role": "user", "content": "hi"}, call]
    assert check_local_data(write_jsonl("d.jsonl", [{"messages": turns}]), {}, "auto", SFT).rows


def test_every_row_is_checked_and_problems_are_capped(write_jsonl) -> None:
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    path = write_jsonl("d.jsonl", [good] * 3000 + [{"messages": []}] * 25)
    with pytest.raises(DataError) as caught:
        check_local_data(path, {}, "auto", SFT)
    lines = str(caught.value).splitlines()
    assert lines[0] == f"{path}:3001: messages: empty list of messages"
    assert len(lines) == MAX_PROBLEMS + 1
    assert lines[-1] == f"{path}: 5 more problem(s) not shown"


def test_summary_has_every_column_under_aligntune_names(write_jsonl) -> None:
    rows = [{"question": "q", "gold": "1"}, {"question": "r", "gold": "2", "extra": None}]
    path = write_jsonl("g.jsonl", rows)
    summary = check_local_data(path, {"prompt": "question"}, "auto", ("prompt",))
    kinds = {"prompt": "string", "gold": "string"}  # `extra` holds only null ...
    gaps = {"extra": 1}  # ... and line 1 lacks it
    assert summary == DataSummary(
        path,
        2,
        frozenset({"prompt", "gold", "extra"}),
        "prompt",
        "detected from line 1",
        kinds=kinds,
        gaps=gaps,
        identity=file_identity(path),
    )


def test_parquet_columns_and_rows_come_from_the_footer(tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"prompt": ["p"] * 5000, "meta": [{"a": [1, 2]}] * 5000, "n": [1.5] * 5000})
    pq.write_table(table, tmp_path / "d.parquet", row_group_size=100)
    assert parquet_columns(tmp_path / "d.parquet") == (["prompt", "meta", "n"], 5000)
    summary = check_local_data(tmp_path / "d.parquet", {}, "auto", ("prompt",))
    assert (summary.rows, summary.format) == (5000, "prompt")


def test_sample_rows_reads_the_first_rows_renamed(write_jsonl, tmp_path) -> None:
    write_jsonl("g.jsonl", [{"question": str(n)} for n in range(10)])
    source = DataSource(path="g.jsonl", columns={"prompt": "question"})
    rows = sample_rows(source, tmp_path)
    assert [where for where, _ in rows] == [f"{tmp_path / 'g.jsonl'}:{n}" for n in (1, 2, 3, 4)]
    assert rows[0][1] == {"prompt": "0"}
    assert sample_rows(DataSource(path="org/dataset"), tmp_path) == []


def test_a_model_folder_needs_tokenizer_files(make_recipe, tmp_path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "qwen2"}', encoding="utf-8")
    (model / "vocab.json").write_text("{}", encoding="utf-8")
    (model / "model.safetensors").write_bytes(struct.pack("<Q", 2) + b"{}")  # no tensors
    (tmp_path / "text.jsonl").write_text('{"text": "hello"}\n', encoding="utf-8")
    recipe = make_recipe()
    recipe["model"]["name_or_path"] = str(model)
    recipe["data"]["train"]["path"] = str(tmp_path / "text.jsonl")  # needs no chat template
    with pytest.raises(UserInputError, match=r"has no tokenizer files.*it has only vocab\.json"):
        check_inputs(recipe_from_dict(recipe))
    (model / "merges.txt").write_text("", encoding="utf-8")
    check_inputs(recipe_from_dict(recipe))
    (model / "merges.txt").unlink()
    recipe["model"]["trust_remote_code"] = True  # the repository's own code loads its tokenizer
    check_inputs(recipe_from_dict(recipe))
    (model / "model.safetensors").unlink()
    with pytest.raises(UserInputError, match=r"model has no weights: it needs model\.safetensors"):
        check_inputs(recipe_from_dict(recipe))
