"""`aligntune export` on the host: the exact container it starts for a docker run, and the
staging folder that becomes the export only when the runner finished and recorded its check.
The launch seam (`launch.start_container`) is patched; the runner's side is tested for real in
tests/runners/trl/test_export_merge.py and tests/images/test_export_docker.py."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_launch import IMAGE

from aligntune.cli import export, launch
from aligntune.cli.container_user import ContainerUser
from aligntune.cli.engine import DockerState
from aligntune.cli.mounts import Mount
from aligntune.core.exports import read_source
from aligntune.core.rundir import RunDirectoryError


def docker_run(root: Path) -> Path:
    """A finished LoRA run as `aligntune run` (docker) leaves it: container paths in its recipe,
    plan.json's mounts saying which host folder each one is."""
    run, recipe_dir = root / "runs" / "sft", root / "project"
    (recipe_dir / "model").mkdir(parents=True)
    (run / "final").mkdir(parents=True)
    mounts = [
        {"source": str(recipe_dir), "target": "/aligntune/recipe", "read_only": True},
        {"source": str(run), "target": "/aligntune/run", "read_only": False},
    ]
    plan = {
        "backend": "trl",
        "device": "cpu",
        "image": IMAGE,
        "launch": {"runtime": "docker", "container": {"mounts": mounts}},
    }
    recipe = {"model": {"name_or_path": "/aligntune/recipe/model", "peft": {"method": "lora"}}}
    (run / ".aligntune-run").write_text("{}")
    (run / "plan.json").write_text(json.dumps(plan))
    (run / "recipe.resolved.yaml").write_text(yaml.safe_dump(recipe))
    (run / "trainer_settings.json").write_text(json.dumps({"model_init": {"dtype": "bfloat16"}}))
    (run / "status.json").write_text(json.dumps({"status": "finished"}))
    (run / "final" / "adapter_config.json").write_text("{}")
    return run


def test_the_base_is_named_as_the_user_named_it_not_by_its_container_path(
    tmp_path: Path,
) -> None:
    source = read_source(docker_run(tmp_path))
    assert source.base == str(tmp_path / "project" / "model")
    assert source.base_local == tmp_path / "project" / "model"
    assert source.dtype == "bfloat16" and source.image == IMAGE


def test_the_container_reads_the_run_and_base_and_writes_only_the_staging_folder(
    tmp_path: Path,
) -> None:
    run = docker_run(tmp_path)
    source = read_source(run)
    staging, cache = tmp_path / "runs" / ".sft-merged.x.partial", tmp_path / "cache"
    spec = export.export_spec(source, "merged", staging, ContainerUser(1000, 1000), cache)
    assert spec.image == IMAGE and spec.user == "1000:1000" and spec.gpus is None
    assert spec.mounts == (
        Mount(str(run), "/aligntune/run", read_only=True),
        Mount(str(tmp_path / "project" / "model"), "/aligntune/base", read_only=True),
        Mount(str(staging), "/aligntune/export", read_only=False),
        Mount(str(cache), "/aligntune/hf-cache", read_only=False),
    )
    assert spec.command == (
        "export", "/aligntune/run", "--output", "/aligntune/export",
        "--format", "merged",
        "--base-name", str(tmp_path / "project" / "model"),
        "--run-name", str(run),
        "--base", "/aligntune/base",
    )  # fmt: skip


class FakeExport:
    """The runner's container: writes into the staging folder it mounts, ends with `code`."""

    def __init__(self, code: int, files: dict[str, str]) -> None:
        self.code, self.files = code, files
        self.spec: Any = None
        self.description = "fake export"

    def start(self, spec: Any, log: Path, **_: Any) -> FakeExport:
        self.spec = spec
        log.write_text("aligntune: merged shard 1/1\n")
        staging = next(Path(m.source) for m in spec.mounts if m.target == "/aligntune/export")
        for name, text in self.files.items():
            (staging / name).write_text(text)
        return self

    def poll(self) -> int:
        return self.code

    def kill(self) -> None:
        raise AssertionError("a container that ended is never killed")

    def close(self) -> None:
        return None


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An engine that answers and holds the trl cpu image; the cache in tmp_path."""
    state = DockerState(reachable=True, images={IMAGE: {}})
    monkeypatch.setattr("aligntune.cli.engine.probe_docker", lambda: state)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "cache"))


@pytest.mark.usefixtures("engine")
def test_a_finished_export_is_renamed_into_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = docker_run(tmp_path)
    fake = FakeExport(0, {"model.safetensors": "w", "export.json": "{}"})
    monkeypatch.setattr(launch, "start_container", fake.start)
    code = export.export_run(export.ExportOptions(run_dir=run))
    out, err = capsys.readouterr()
    assert code == 0 and out == f"exported: {tmp_path / 'runs' / 'sft-merged'}\n"
    assert "aligntune: merged shard 1/1" in err
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["sft", "sft-merged"]
    assert sorted(p.name for p in (tmp_path / "runs" / "sft-merged").iterdir()) == [
        "export.json",
        "model.safetensors",
    ]
    assert fake.spec.user == f"{os.getuid()}:{os.getgid()}"


@pytest.mark.usefixtures("engine")
@pytest.mark.parametrize(
    ("code", "files", "expected"),
    [
        (70, {"model.safetensors": "half"}, 70),  # the check failed: the runner's exit code
        (0, {"model.safetensors": "w"}, 70),  # exit 0 without export.json: nothing kept
    ],
)
def test_a_failed_export_leaves_no_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, files: dict[str, str], expected: int
) -> None:
    run = docker_run(tmp_path)
    monkeypatch.setattr(launch, "start_container", FakeExport(code, files).start)
    assert export.export_run(export.ExportOptions(run_dir=run)) == expected
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["sft"]


def test_a_missing_image_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = docker_run(tmp_path)
    state = DockerState(reachable=True, images={})
    monkeypatch.setattr("aligntune.cli.engine.probe_docker", lambda: state)
    with pytest.raises(export.BackendUnavailableError, match=f"image {IMAGE} is not built"):
        export.export_run(export.ExportOptions(run_dir=run))
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["sft"]


@pytest.mark.usefixtures("engine")
def test_a_full_disk_on_the_host_is_one_line_and_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = docker_run(tmp_path)

    def full(**_: Any) -> str:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(export.tempfile, "mkdtemp", full)
    monkeypatch.setattr(launch, "start_container", FakeExport(0, {}).start)
    with pytest.raises(RunDirectoryError, match="No space left on device") as refused:
        export.export_run(export.ExportOptions(run_dir=run))
    assert refused.value.hint == "free space on that disk, or choose another --output"
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["sft"]


def test_the_released_image_a_run_used_is_pulled_again_before_the_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = docker_run(tmp_path)
    released = "registry.example:5000/aligntune/trl-runner@sha256:" + "ab" * 32
    plan = json.loads((run / "plan.json").read_text())
    (run / "plan.json").write_text(json.dumps({**plan, "image": released}))
    monkeypatch.setattr(
        "aligntune.cli.engine.probe_docker", lambda: DockerState(reachable=True, images={})
    )
    monkeypatch.setenv("HF_HOME", str(tmp_path / "cache"))
    pulled: list[tuple[str, str]] = []
    monkeypatch.setattr(
        "aligntune.cli.pull.pull_image",
        lambda ref, registry, build, quiet: pulled.append((ref, registry)),
    )
    fake = FakeExport(0, {"export.json": "{}"})
    monkeypatch.setattr(launch, "start_container", fake.start)
    assert export.export_run(export.ExportOptions(run_dir=run)) == 0
    assert pulled == [(released, "registry.example:5000")] and fake.spec.image == released


@pytest.mark.usefixtures("engine")
def test_a_cache_that_holds_the_run_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HF_HOME above the runs would mount the run directory, read-only by contract, read-write."""
    run = docker_run(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "runs"))
    monkeypatch.setattr(launch, "start_container", FakeExport(0, {}).start)
    with pytest.raises(export.UserInputError) as refused:
        export.export_run(export.ExportOptions(run_dir=run))
    assert str(refused.value) == (
        f"the Hugging Face cache {tmp_path / 'runs'} holds {run}, which the container only "
        "reads; it would be mounted read-write"
    )
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["sft"]
