"""`aligntune validate` and `plan` as a user runs them: exit codes, messages, nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "recipes" / "tiny"
ALIGNTUNE = [sys.executable, "-m", "aligntune.cli.main"]


def aligntune(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ALIGNTUNE_DEBUG"}
    return subprocess.run(
        [*ALIGNTUNE, *args], cwd=cwd, capture_output=True, text=True, timeout=60, env=env
    )


def snapshot(folder: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in folder.rglob("*")}


def _recipe(tmp: Path, **changes) -> dict:
    recipe = {
        "algorithm": {"name": "sft"},
        "model": {"name_or_path": str(TINY / "model")},
        "data": {"train": {"path": str(TINY / "data/sft.jsonl")}},
    }
    recipe.update(changes)
    return recipe


def _data(tmp: Path, name: str, text: str) -> str:
    (tmp / name).write_text(text, encoding="utf-8")
    return str(tmp / name)


BAD = {
    "yaml-syntax": (lambda t: "algorithm:\n  name: sft\n model: [\n", "recipe.yaml:3: 1 problem"),
    "unknown-key": (lambda t: _recipe(t, trainig={}), "trainig: unknown key; did you mean"),
    "wrong-type": (lambda t: _recipe(t, training={"batch_size": "big"}), "training.batch_size:"),
    "unknown-algorithm": (lambda t: _recipe(t, algorithm={"name": "rlhf"}), "algorithm: algorithm"),
    "unknown-backend": (lambda t: _recipe(t, backend="axolotl"), "backend: Input should be"),
    "missing-field": (
        lambda t: {"algorithm": {"name": "sft"}, "data": {"train": {"path": "x.jsonl"}}},
        "model: required field is missing",
    ),
    "out-of-range": (
        lambda t: _recipe(t, training={"learning_rate": 0}),
        "training.learning_rate:",
    ),
    "defining-setting": (
        lambda t: _recipe(t, algorithm={"name": "dapo", "loss_type": "grpo"}),
        "would change what dapo is",
    ),
    "missing-data": (
        lambda t: _recipe(t, data={"train": {"path": str(t / "none.jsonl")}}),
        "data.train: " + "{tmp}/none.jsonl: data file not found",
    ),
    "bad-jsonl-line": (
        lambda t: _recipe(
            t, data={"train": {"path": _data(t, "bad.jsonl", '{"text": "a"}\n{"text": \n')}}
        ),
        "{tmp}/bad.jsonl:2: invalid JSON",
    ),
    "missing-columns": (
        lambda t: _recipe(t, data={"train": {"path": _data(t, "q.jsonl", '{"question": "a"}\n')}}),
        "columns found: question",
    ),
    "empty-data": (
        lambda t: _recipe(t, data={"train": {"path": _data(t, "empty.jsonl", "")}}),
        "empty.jsonl: data file is empty",
    ),
    "same-preference": (
        lambda t: _recipe(
            t,
            algorithm={"name": "dpo"},
            data={
                "train": {
                    "path": _data(t, "p.jsonl", '{"prompt":"p","chosen":"a","rejected":"a"}\n')
                }
            },
        ),
        "p.jsonl:1: chosen and rejected are identical",
    ),
    "missing-model": (
        lambda t: _recipe(t, model={"name_or_path": "./no-such-model"}),
        "model.name_or_path: model folder",
    ),
    "unknown-reward": (
        lambda t: _recipe(
            t,
            algorithm={"name": "grpo"},
            data={"train": {"path": str(TINY / "data/grpo.jsonl")}},
            rewards=[{"function": "correctness"}],
        ),
        "rewards.0: unknown reward function 'correctness'",
    ),
    "not-utf8": (lambda t: b"\xff\xfe\x00bad", "cannot read recipe"),
}


def _write_case(tmp_path: Path, case: str) -> Path:
    content = BAD[case][0](tmp_path)
    path = tmp_path / "recipe.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return path


@pytest.mark.parametrize("command", ["validate", "plan"])
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_exits_1_with_a_located_message_and_writes_nothing(tmp_path, case, command):
    recipe = _write_case(tmp_path, case)
    before = snapshot(tmp_path)
    result = aligntune(command, str(recipe), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert BAD[case][1].format(tmp=tmp_path) in result.stderr
    assert result.stderr.splitlines()[0].startswith("error: ")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", ["validate", "plan", "run"])
def test_a_missing_recipe_file_is_named_with_what_was_meant(tmp_path, command) -> None:
    (tmp_path / "sft.yaml").write_text("")
    (tmp_path / "dpo.yaml").write_text("")
    result = aligntune(command, "stf.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert "stf.yaml: 1 problem" in result.stderr and "recipe file not found" in result.stderr
    assert "hint: did you mean sft.yaml?" in result.stderr.splitlines()
    result = aligntune(command, "nope.yaml", cwd=tmp_path)
    assert "hint: . has: dpo.yaml, sft.yaml" in result.stderr.splitlines()
    result = aligntune(command, "no-folder/sft.yaml", cwd=tmp_path)
    assert "hint: the folder no-folder does not exist or cannot be read" in result.stderr


def test_validate_prints_one_line_per_valid_recipe_and_fails_on_any_invalid(tmp_path) -> None:
    bad = _write_case(tmp_path, "unknown-key")
    ok = aligntune("validate", str(TINY / "sft.yaml"), str(TINY / "dpo.yaml"), cwd=tmp_path)
    assert ok.returncode == 0
    oks = [line.split()[1] for line in ok.stdout.splitlines() if line.startswith("ok: ")]
    assert oks == [str(TINY / "sft.yaml"), str(TINY / "dpo.yaml")]
    mixed = aligntune("validate", str(TINY / "sft.yaml"), str(bad), cwd=tmp_path)
    assert mixed.returncode == 1
    assert "1 of 2 recipe(s) invalid" in mixed.stderr


def _someone_elses_recipe(tmp_path: Path, monkeypatch) -> tuple[Path, list[str]]:
    """A recipe with data outside its folder and a config file it does not use, and the mounts
    a run would make; HOME and HF_HOME under tmp_path, the recipe's folder the current one."""
    project, shared, hf = tmp_path / "project", tmp_path / "shared", tmp_path / "hf"
    project.mkdir()
    shared.mkdir()
    (shared / "train.jsonl").write_text((TINY / "data" / "sft.jsonl").read_text())
    (project / "ds.json").write_text("{}")
    recipe = _recipe(
        tmp_path,
        data={"train": {"path": "../shared/train.jsonl"}},
        distributed={"config_file": "ds.json"},
        output={"dir": "out"},
    )
    (project / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(hf))
    monkeypatch.chdir(project)
    mounts = [
        f"{project} -> /aligntune/recipe (read-only)",
        f"{TINY / 'model'} -> /aligntune/inputs/1-model (read-only)",
        f"{shared / 'train.jsonl'} -> /aligntune/inputs/2-train.jsonl (read-only)",
        f"{project / 'out'} -> /aligntune/run (read-write)",
        f"{hf} -> /aligntune/hf-cache (read-write)",
    ]
    return project / "recipe.yaml", mounts


IGNORED = (
    "distributed.config_file is ignored and not mounted: only strategy deepspeed reads it, "
    "and this recipe's strategy is none"
)


def test_validate_and_plan_list_every_host_path_a_run_would_mount(
    tmp_path, monkeypatch, capsys
) -> None:
    """`validate`, `plan` and `plan --json` (on a host whose engine has the image) show the same
    mounts, warn of the ignored config file, and create nothing."""
    from aligntune.cli import host
    from aligntune.cli.commands import plan_recipe, validate_recipes
    from aligntune.core.backends import image_tag
    from aligntune.core.plan import HostInfo

    recipe, mounts = _someone_elses_recipe(tmp_path, monkeypatch)
    before = snapshot(tmp_path)
    assert validate_recipes([recipe]) == 0
    shown = capsys.readouterr().out.splitlines()[1:]
    data = f"data:      data.train: {tmp_path / 'shared' / 'train.jsonl'}: messages"
    assert shown[0].strip().startswith(data)
    lines = [line.split(maxsplit=1)[1] for line in shown[1:]]
    assert lines == [*mounts, IGNORED]
    found = HostInfo(docker_available=True, images=frozenset({image_tag("trl", "cpu")}))
    monkeypatch.setattr(host, "probe_host", lambda **_: (found, host.DockerState()))
    report = plan_recipe(recipe, None, "docker")
    assert [line.split(maxsplit=1)[1] for line in report.lines()[-6:]] == [IGNORED, *mounts]
    as_json = json.loads(report.as_json())
    access = {True: "read-only", False: "read-write"}
    listed = [
        f"{m['source']} -> {m['target']} ({access[m['read_only']]})" for m in as_json["mounts"]
    ]
    assert listed == mounts and as_json["warnings"] == [IGNORED]
    assert snapshot(tmp_path) == before


def test_plan_show_sample_marks_what_is_trained(tmp_path) -> None:
    """The first row as the run trains it: only the reply and its stop token (assistant_only_loss
    is the default); a hub model's check is left to the runner."""
    only = _recipe(tmp_path, algorithm={"name": "sft", "assistant_only_loss": True})
    (tmp_path / "only.yaml").write_text(yaml.safe_dump({**only, "name": "only"}))
    result = aligntune("plan", "only.yaml", "--runtime", "local", "--show-sample", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    (header,) = [line for line in lines if line.startswith("sample:")]
    assert f"{TINY / 'data' / 'sft.jsonl'}:1 rendered with the chat template of" in header
    assert lines[-4:] == [
        "<|im_start|>user",
        "What is the capital of France?<|im_end|>",
        "<|im_start|>assistant",
        "[[The capital of France is Paris.<|im_end|>]]",
    ]
    as_json = aligntune(
        "plan",
        str(TINY / "sft.yaml"),
        "--runtime",
        "local",
        "--show-sample",
        "--json",
        cwd=tmp_path,
    )
    sample = json.loads(as_json.stdout)["sample"]  # assistant_only_loss is on by default
    assert sample[1] == "<|im_start|>user"
    assert sample[-1] == "[[The capital of France is Paris.<|im_end|>]]"
    hub = _recipe(tmp_path, model={"name_or_path": "Qwen/Qwen3-0.6B"})
    (tmp_path / "hub.yaml").write_text(yaml.safe_dump(hub))
    checked = aligntune("validate", "hub.yaml", cwd=tmp_path)
    assert "note:      Qwen/Qwen3-0.6B is a hub model (no tokenizer here): the runner renders" in (
        checked.stdout
    )


def test_debug_mode_shows_the_traceback(tmp_path) -> None:
    recipe = _write_case(tmp_path, "unknown-key")
    env = {**os.environ, "ALIGNTUNE_DEBUG": "1"}
    result = subprocess.run(
        [*ALIGNTUNE, "plan", str(recipe)], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_plan_local_runtime_explains_the_choice(tmp_path) -> None:
    result = aligntune(
        "plan", str(TINY / "grpo.yaml"), "--runtime", "local", "--json", cwd=tmp_path
    )
    if "runner is not installed" in result.stderr:
        assert result.returncode == 3
        pytest.skip("the trl runner is not installed in this environment")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert (plan["backend"], plan["device"], plan["runtime"]) == ("trl", "cpu", "local")
    assert plan["mounts"] == []  # no container: the runner reads the host paths itself
    assert any("auto chose TRL" in reason for reason in plan["reasons"])


def test_plan_explicit_unsloth_for_gspo_exits_3_naming_trl(tmp_path) -> None:
    recipe = _recipe(
        tmp_path,
        algorithm={"name": "gspo", "num_generations": 4},
        rewards=[{"function": "contains", "params": {"text": "1"}}],
    )
    recipe["data"] = {"train": {"path": str(TINY / "data/grpo.jsonl")}}
    path = tmp_path / "gspo.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = aligntune(
        "plan", str(path), "--backend", "unsloth", "--runtime", "local", cwd=tmp_path
    )
    assert result.returncode == 3
    assert "Unsloth does not support gspo; TRL does" in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2(tmp_path) -> None:
    result = aligntune("plan", str(TINY / "sft.yaml"), "--runtime", "ssh", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_list_backends_and_the_seed_alias_print_the_matrix(tmp_path) -> None:
    for command in ("list-backends", "list-backends-cmd"):
        result = aligntune(command, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[1:8]}
        assert rows["gspo"] == ["yes", "no"] and rows["sft"] == ["yes", "yes"]
        assert "trl: runs here:" in result.stdout and "unsloth: runs here:" in result.stdout


def test_diagnose_reports_every_part_and_works_without_a_gpu(tmp_path) -> None:
    result = aligntune("diagnose", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    names = [check["name"] for check in json.loads(result.stdout)["checks"]]
    assert names[:4] == ["aligntune", "docker engine", "docker compose", "NVIDIA GPUs"]
    assert any(name.startswith("image aligntune/trl-runner") for name in names)


def test_diagnose_without_a_docker_engine_says_how_to_fix_it(tmp_path) -> None:
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no.sock"}
    result = subprocess.run(
        [*ALIGNTUNE, "diagnose"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0
    assert "[!!] docker engine: not reachable" in result.stdout
    assert "fix: install and start it" in result.stdout


def test_importing_core_and_cli_loads_no_training_stack() -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        "import aligntune.core, aligntune.cli\n"
        "for pkg in (aligntune.core, aligntune.cli):\n"
        "    for m in pkgutil.iter_modules(pkg.__path__):\n"
        "        if m.name != '__main__':\n"
        "            importlib.import_module(pkg.__name__ + '.' + m.name)\n"
        "heavy = ('torch', 'transformers', 'trl', 'unsloth', 'datasets', 'peft', 'accelerate',\n"
        "         'matplotlib')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
