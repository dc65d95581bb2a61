"""The exact container a plan asks for: image, command, mounts, env names, user, GPUs, labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from aligntune.cli.container import (
    PASSTHROUGH_ENV,
    ContainerSpec,
    GpuRequest,
    Mount,
    RunPaths,
    build_container_spec,
    container_name,
    parse_gpus,
)
from aligntune.cli.launch import container_environment, run_arguments
from aligntune.core.backends import image_tag
from aligntune.core.errors import UsageError
from aligntune.core.loader import load_recipe
from aligntune.core.plan import Plan
from aligntune.core.version import VERSION

TINY = Path(__file__).resolve().parents[2] / "recipes" / "tiny"


def make_plan(device: str = "cpu", backend: str = "trl") -> Plan:
    return Plan(
        backend=backend,  # type: ignore[arg-type]
        device=device,  # type: ignore[arg-type]
        runtime="docker",
        image=image_tag(backend, device),
        image_available=True,
        algorithm="sft",
        requested_backend="auto",
        gpus=1 if device == "cuda" else 0,
        nnodes=1,
        processes_per_node=1,
        reasons=[],
        warnings=[],
    )


def paths(tmp_path: Path, recipe_file: Path = TINY / "sft.yaml") -> RunPaths:
    return RunPaths(recipe_file, tmp_path / "run", tmp_path / "hf")


def spec_for(tmp_path: Path, **kwargs: object) -> ContainerSpec:
    recipe = load_recipe(TINY / "sft.yaml")
    plan = kwargs.pop("plan", make_plan())
    return build_container_spec(plan, recipe, paths(tmp_path), user="1000:1000", **kwargs)  # type: ignore[arg-type]


def references(spec: ContainerSpec, flag: str = "--reference") -> dict[str, str]:
    """The `--reference FIELD=PATH` (or `--host-path`) pairs the command hands the runner."""
    args = spec.command
    return dict(args[i + 1].split("=", 1) for i, arg in enumerate(args) if arg == flag)


def test_cpu_spec_is_exactly_this(tmp_path: Path) -> None:
    spec = spec_for(tmp_path)
    recipe = load_recipe(TINY / "sft.yaml")
    assert spec == ContainerSpec(
        image=image_tag("trl", "cpu"),
        name=container_name(tmp_path / "run", recipe),
        command=(
            "run",
            "/aligntune/recipe/sft.yaml",
            "--output",
            "/aligntune/run",
            "--reference",
            "model.name_or_path=/aligntune/recipe/model",
            "--reference",
            "data.train.path=/aligntune/recipe/data/sft.jsonl",
            "--host-path",
            f"model.name_or_path={TINY / 'model'}",
            "--host-path",
            f"data.train.path={TINY / 'data' / 'sft.jsonl'}",
            "--host-path",
            f"output.dir={tmp_path / 'run'}",
        ),
        mounts=(
            Mount(str(TINY), "/aligntune/recipe", read_only=True),
            Mount(str(tmp_path / "run"), "/aligntune/run", read_only=False),
            Mount(str(tmp_path / "hf"), "/aligntune/hf-cache", read_only=False),
        ),
        environment={"HF_HOME": "/aligntune/hf-cache"},
        passthrough_env=PASSTHROUGH_ENV,
        user="1000:1000",
        labels={
            "org.aligntune.run": "tiny-sft",
            "org.aligntune.run-dir": str(tmp_path / "run"),
            "org.aligntune.backend": "trl",
            "org.aligntune.device": "cpu",
            "org.aligntune.version": VERSION,
        },
        working_dir="/aligntune/run",
        init=True,
        shm_size="2g",
        gpus=None,
        ulimits=None,
    )


def test_cuda_spec_requests_all_gpus_by_default(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, plan=make_plan("cuda"))
    assert spec.image == image_tag("trl", "cuda")
    assert spec.gpus == GpuRequest(count=-1)
    arguments = run_arguments(spec, {})
    (request,) = arguments["device_requests"]
    assert request["Count"] == -1 and request["Capabilities"] == [["gpu"]]
    assert spec.ulimits == {"stack": 67108864}
    limits = {u["Name"]: (u["Soft"], u["Hard"]) for u in arguments["ulimits"]}
    assert limits == {"stack": (67108864, 67108864)}


def test_unsloth_cpu_mode_runs_the_cpu_image_without_gpus(tmp_path: Path) -> None:
    """The cpu image passes its own preflight: the spec needs no opt-out variable."""
    spec = spec_for(tmp_path, plan=make_plan("cpu", backend="unsloth"))
    assert spec.image == image_tag("unsloth", "cpu")
    assert spec.gpus is None and spec.ulimits is None
    assert "ALIGNTUNE_UNSLOTH_ALLOW_CPU" not in spec.environment


def test_cuda_spec_takes_given_gpus(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, plan=make_plan("cuda"), gpus=parse_gpus("device=0,2"))
    assert spec.gpus == GpuRequest(device_ids=("0", "2"))
    (request,) = run_arguments(spec, {})["device_requests"]
    assert request["DeviceIDs"] == ["0", "2"]


def test_cpu_plan_refuses_gpus(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--gpus needs a cuda image"):
        spec_for(tmp_path, gpus=GpuRequest(count=1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("all", GpuRequest(count=-1)),
        ("2", GpuRequest(count=2)),
        ("device=1", GpuRequest(device_ids=("1",))),
        ("0,1", GpuRequest(device_ids=("0", "1"))),
        ("device=GPU-3f2a9c1e-11", GpuRequest(device_ids=("GPU-3f2a9c1e-11",))),
        (None, None),
    ],
)
def test_parse_gpus(text: str | None, expected: GpuRequest | None) -> None:
    assert parse_gpus(text) == expected


@pytest.mark.parametrize("text", ["two please", "banana", "-1", "0", "device=a,b"])
def test_parse_gpus_rejects_nonsense(text: str) -> None:
    """Neither a count nor GPU indexes or UUIDs ("0" is not a count, and not silently GPU 0)."""
    with pytest.raises(UsageError, match="use all, a count such as 2, or device=0,1"):
        parse_gpus(text)


def test_inputs_outside_the_recipe_folder_get_their_own_read_only_mounts(tmp_path: Path) -> None:
    data = tmp_path / "elsewhere" / "train.jsonl"
    data.parent.mkdir()
    data.write_text((TINY / "data" / "sft.jsonl").read_text())
    recipe_file = tmp_path / "recipes" / "r.yaml"
    recipe_file.parent.mkdir()
    recipe_file.write_text(
        f"algorithm: {{name: sft}}\nmodel: {{name_or_path: {TINY / 'model'}}}\n"
        "data: {train: {path: ../elsewhere/train.jsonl}}\n"
    )
    recipe = load_recipe(recipe_file)
    spec = build_container_spec(make_plan(), recipe, paths(tmp_path, recipe_file), user="0:0")
    assert spec.mounts[:3] == (
        Mount(str(recipe_file.parent), "/aligntune/recipe"),
        Mount(str(TINY / "model"), "/aligntune/inputs/1-model"),
        Mount(str(data), "/aligntune/inputs/2-train.jsonl"),
    )
    assert all(m.read_only for m in spec.mounts[:3])
    assert references(spec) == {
        "model.name_or_path": "/aligntune/inputs/1-model",
        "data.train.path": "/aligntune/inputs/2-train.jsonl",
    }


def test_every_local_input_is_mounted_and_handed_to_the_runner(  # type: ignore[no-untyped-def]
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch, write_recipe
) -> None:
    """Model, data, eval, reward and value models and the DeepSpeed config, inside the recipe's
    folder or not: each has a container path, and the runner sees each as a local input there."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    (tmp_path / "ds.json").write_text("{}")
    recipe_file = write_recipe(
        {
            "algorithm": {
                "name": "ppo",
                "reward_model": "~/models/rm",
                "value_model": "../shared/value",
            },
            "model": {"name_or_path": "./model"},
            "data": {
                "train": {"path": "./data/train.jsonl"},
                "eval": {"path": str(tmp_path.parent / "shared" / "eval.jsonl")},
            },
            "distributed": {"strategy": "deepspeed", "config_file": "ds.json"},
        }
    )
    recipe = load_recipe(recipe_file)
    spec = build_container_spec(make_plan(), recipe, paths(tmp_path, recipe_file), user="0:0")
    assert spec.mounts[:4] == (
        Mount(str(tmp_path), "/aligntune/recipe"),
        Mount(str(home / "models" / "rm"), "/aligntune/inputs/1-rm"),
        Mount(str(tmp_path.parent / "shared" / "value"), "/aligntune/inputs/2-value"),
        Mount(str(tmp_path.parent / "shared" / "eval.jsonl"), "/aligntune/inputs/3-eval.jsonl"),
    )
    expected = {
        "algorithm.reward_model": "/aligntune/inputs/1-rm",
        "algorithm.value_model": "/aligntune/inputs/2-value",
        "model.name_or_path": "/aligntune/recipe/model",
        "data.train.path": "/aligntune/recipe/data/train.jsonl",
        "data.eval.path": "/aligntune/inputs/3-eval.jsonl",
        "distributed.config_file": "/aligntune/recipe/ds.json",
    }
    assert references(spec) == expected
    assert spec.command[:2] == ("run", "/aligntune/recipe/recipe.yaml")
    in_container = recipe.with_references(references(spec))
    assert in_container.local_references() == {k: Path(v) for k, v in expected.items()}
    assert in_container.algorithm.reward_model == "/aligntune/inputs/1-rm"  # type: ignore[union-attr]
    # What the run directory records: the user's host paths, never the container's.
    host = references(spec, "--host-path")
    assert host == {
        **{field: str(path) for field, path in recipe.local_references().items()},
        "output.dir": str(tmp_path / "run"),
    }
    assert host["algorithm.reward_model"] == str(home / "models" / "rm")


def test_hub_ids_are_left_alone(tmp_path: Path, write_recipe) -> None:  # type: ignore[no-untyped-def]
    recipe_file = write_recipe(
        {
            "algorithm": {"name": "sft"},
            "model": {"name_or_path": "Qwen/Qwen3-0.6B"},
            "data": {"train": {"path": "trl-lib/Capybara"}},
        }
    )
    spec = build_container_spec(
        make_plan(), load_recipe(recipe_file), paths(tmp_path, recipe_file), user="0:0"
    )
    assert references(spec) == {}
    assert references(spec, "--host-path") == {"output.dir": str(tmp_path / "run")}
    assert [m.target for m in spec.mounts if m.read_only] == ["/aligntune/recipe"]


def test_secrets_pass_by_name_and_never_enter_the_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_marker_secret")
    spec = spec_for(tmp_path)
    assert "hf_marker_secret" not in repr(spec) + repr(spec.describe())
    assert "HF_TOKEN" in spec.passthrough_env
    env = {"HF_TOKEN": "hf_marker_secret", "UNRELATED": "x"}
    arguments = run_arguments(spec, env)
    assert arguments["environment"] == [
        "HF_HOME=/aligntune/hf-cache",
        "HF_TOKEN=hf_marker_secret",
    ]
    without_env = dict(arguments, environment=None)
    assert "hf_marker_secret" not in repr(without_env)


def test_unset_passthrough_names_are_not_sent(tmp_path: Path) -> None:
    spec = spec_for(tmp_path)
    assert container_environment(spec, {}) == ["HF_HOME=/aligntune/hf-cache"]


def test_run_arguments_carry_init_shm_user_and_read_only_binds(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, mode="resume")
    arguments = run_arguments(spec, {})
    assert arguments["init"] is True
    assert arguments["shm_size"] == "2g"
    assert arguments["user"] == "1000:1000"
    assert arguments["command"][-1] == "--resume"
    binds = {m["Target"]: (m["Source"], m["ReadOnly"]) for m in arguments["mounts"]}
    assert binds["/aligntune/recipe"] == (str(TINY), True)
    assert binds["/aligntune/run"] == (str(tmp_path / "run"), False)
    assert "device_requests" not in arguments and "ulimits" not in arguments


def test_container_name_is_stable_per_run_directory(tmp_path: Path) -> None:
    recipe = load_recipe(TINY / "sft.yaml")
    first = container_name(tmp_path / "a", recipe)
    assert first == container_name(tmp_path / "a", recipe)
    assert first != container_name(tmp_path / "b", recipe)
    assert first.startswith("aligntune-tiny-sft-")
