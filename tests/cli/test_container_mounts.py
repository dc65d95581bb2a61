"""The container is the boundary: exactly what of the host a run's ContainerSpec mounts, and the
host paths it refuses to mount (kernel and runtime state, sockets, the user's home)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_container_spec import TINY, make_plan, references

from aligntune.cli.container import ContainerSpec, RunPaths, build_container_spec
from aligntune.cli.mounts import Mount, hf_cache_path
from aligntune.core.errors import UserInputError
from aligntune.core.loader import load_recipe

RecipeWriter = Callable[..., Path]
SFT_DATA = TINY / "data" / "sft.jsonl"


def spec_of(recipe_file: Path, tmp_path: Path, hf: Path | None = None) -> ContainerSpec:
    """The container `aligntune run` would start for this recipe file."""
    paths = RunPaths(recipe_file, tmp_path / "run", hf or tmp_path / "hf")
    return build_container_spec(make_plan(), load_recipe(recipe_file), paths, user="0:0")


def sft(**sections: Any) -> dict[str, Any]:
    """An SFT recipe on the tiny model (outside tmp_path); `sections` replace parts."""
    return {
        "algorithm": {"name": "sft"},
        "model": {"name_or_path": str(TINY / "model")},
        **sections,
    }


@pytest.mark.parametrize(("strategy", "mounted"), [("none", False), ("deepspeed", True)])
def test_the_config_file_is_mounted_only_when_the_strategy_reads_it(
    tmp_path: Path, write_recipe: RecipeWriter, strategy: str, mounted: bool
) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-configs" / "ds.json"
    outside.parent.mkdir()
    outside.write_text("{}")
    recipe_file = write_recipe(
        sft(
            data={"train": {"path": str(SFT_DATA)}},
            distributed={"strategy": strategy, "config_file": str(outside)},
        )
    )
    spec = spec_of(recipe_file, tmp_path)
    config = (Mount(str(outside), "/aligntune/inputs/3-ds.json"),) if mounted else ()
    assert spec.mounts == (
        Mount(str(tmp_path), "/aligntune/recipe"),
        Mount(str(TINY / "model"), "/aligntune/inputs/1-model"),
        Mount(str(SFT_DATA), "/aligntune/inputs/2-sft.jsonl"),
        *config,
        Mount(str(tmp_path / "run"), "/aligntune/run", read_only=False),
        Mount(str(tmp_path / "hf"), "/aligntune/hf-cache", read_only=False),
    )
    handed = references(spec)
    assert ("distributed.config_file" in handed) is mounted
    in_container = load_recipe(recipe_file).with_references(handed)
    assert (in_container.distributed.config_file is not None) is mounted


def test_a_link_in_the_recipe_folder_is_mounted_where_it_really_points(
    tmp_path: Path, write_recipe: RecipeWriter
) -> None:
    """Docker follows a link when it mounts: the spec names the real file, the one checked."""
    (tmp_path / "train.jsonl").symlink_to(SFT_DATA)
    link = str(tmp_path / "train.jsonl")  # absolute: the path model keeps it as written
    spec = spec_of(write_recipe(sft(data={"train": {"path": link}})), tmp_path)
    assert Mount(str(SFT_DATA), "/aligntune/inputs/2-sft.jsonl") in spec.mounts
    assert references(spec)["data.train.path"] == "/aligntune/inputs/2-sft.jsonl"
    writable = [m.source for m in spec.mounts if not m.read_only]
    assert writable == [str(tmp_path / "run"), str(tmp_path / "hf")]


def test_an_input_that_is_a_socket_is_never_mounted(
    tmp_path: Path, write_recipe: RecipeWriter, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Even past the preflight (a recipe built by hand), the spec refuses a socket."""
    elsewhere = tmp_path_factory.mktemp("s")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(elsewhere / "docker.sock"))
    recipe_file = write_recipe(
        sft(
            data={"train": {"path": str(SFT_DATA)}},
            distributed={"strategy": "deepspeed", "config_file": str(elsewhere / "docker.sock")},
        )
    )
    with pytest.raises(
        UserInputError, match=r"distributed\.config_file: .*docker\.sock is a socket"
    ):
        spec_of(recipe_file, tmp_path)


def test_the_home_folder_is_never_mounted(
    tmp_path: Path, write_recipe: RecipeWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recipe kept in the home folder would mount all of it (keys, tokens, docker sockets)."""
    recipe_file = write_recipe(sft(data={"train": {"path": str(SFT_DATA)}}))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(UserInputError, match=r"the recipe's folder .* is your home folder"):
        spec_of(recipe_file, tmp_path / "elsewhere")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(UserInputError, match=r"Hugging Face cache .* holds your home folder"):
        spec_of(recipe_file, tmp_path / "elsewhere", hf=tmp_path)


@pytest.mark.parametrize("run_dir", ["/", "/etc", "/proc/self"])
def test_a_run_directory_of_the_system_is_never_mounted_read_write(
    tmp_path: Path, write_recipe: RecipeWriter, run_dir: str
) -> None:
    recipe_file = write_recipe(sft(data={"train": {"path": str(SFT_DATA)}}))
    paths = RunPaths(recipe_file, Path(run_dir), tmp_path / "hf")
    with pytest.raises(UserInputError, match=r"the run directory .* would be mounted read-write"):
        build_container_spec(make_plan(), load_recipe(recipe_file), paths, user="0:0")


@pytest.mark.parametrize(
    ("variables", "cache"),
    [
        ({"HF_HOME": "~/hf"}, "home/hf"),
        ({"HF_HOME": "$HOME/models/hf"}, "home/models/hf"),
        ({"XDG_CACHE_HOME": "{tmp}/xdg"}, "xdg/huggingface"),
        ({}, "home/.cache/huggingface"),
    ],
)
def test_the_cache_mounted_is_the_one_huggingface_hub_uses(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str],
    cache: str,
) -> None:
    """A quoted `HF_HOME="~/hf"` left `~` to aligntune: it made a `~` folder in the working
    directory and mounted that, an empty cache beside the one the user filled."""
    for name in ("HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name, value in variables.items():
        monkeypatch.setenv(name, value.format(tmp=tmp_path))
    assert hf_cache_path() == tmp_path / cache


def test_a_cache_that_holds_an_input_is_not_mounted_read_write(
    tmp_path: Path, write_recipe: RecipeWriter
) -> None:
    """HF_HOME set to the recipe's folder (or one above the model) mounted the inputs a second
    time, read-write: the run could write the recipe, its data and the model."""
    recipe_file = write_recipe(sft(data={"train": {"path": str(SFT_DATA)}}))
    with pytest.raises(UserInputError) as refused:
        spec_of(recipe_file, tmp_path / "elsewhere", hf=tmp_path)
    assert str(refused.value) == (
        f"the Hugging Face cache {tmp_path} holds {tmp_path}, which the container only reads; it "
        "would be mounted read-write"
    )
    assert refused.value.hint == "set HF_HOME to a folder of its own"
    with pytest.raises(UserInputError, match=rf"cache {TINY} holds {TINY / 'model'}, which"):
        spec_of(recipe_file, tmp_path / "elsewhere", hf=TINY)
    spec = spec_of(recipe_file, tmp_path / "elsewhere", hf=tmp_path / "recipe-cache-beside")
    assert [m.read_only for m in spec.mounts] == [True, True, True, False, False]
