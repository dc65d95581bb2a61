"""Where a run may write: the run directory, the one read-write mount besides the HF cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from aligntune.core.errors import ExitCode, UserInputError
from aligntune.core.loader import recipe_from_dict
from aligntune.core.outputdir import check_output, output_dir_problem
from aligntune.core.recipe import Recipe


def sft(tmp_path: Path, output_dir: str | None = None) -> Recipe:
    tree = {
        "algorithm": {"name": "sft"},
        "model": {"name_or_path": "org/model"},
        "data": {"train": {"path": "org/data"}},
        "output": {"dir": output_dir},
    }
    return recipe_from_dict(tree, base_dir=tmp_path)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home folder of its own, and the current folder beside it."""
    (tmp_path / "home").mkdir()
    (tmp_path / "work").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path / "home"


@pytest.mark.parametrize(
    ("output", "problem"),
    [
        ("/", "is the root folder"),
        ("/etc", "is a system folder"),
        ("/usr", "is a system folder"),
        ("/lib64", "is a system folder"),
        ("/var", "is a system folder"),
        ("/proc/self", "is inside /proc"),
        ("/dev/shm/run", "is inside /dev"),
        ("/var/run/aligntune", "is inside /run"),
        ("../home", "is your home folder"),
        ("..", "holds your home folder"),
    ],
)
def test_the_run_directory_is_never_a_folder_of_the_system_or_the_home(
    output: str, problem: str, tmp_path: Path
) -> None:
    with pytest.raises(UserInputError, match=rf"^--output: {output}.* {problem}") as caught:
        check_output(sft(tmp_path), output)
    assert caught.value.exit_code == ExitCode.USER_INPUT
    assert caught.value.hint == "use a new folder, e.g. --output runs/sft"


def test_an_existing_file_or_a_link_to_the_system_is_refused(tmp_path: Path) -> None:
    (tmp_path / "work" / "notes.txt").write_text("mine")
    (tmp_path / "work" / "out").symlink_to("/etc")
    with pytest.raises(UserInputError, match=r"^output\.dir: notes\.txt \(-> .*\) is an existing"):
        check_output(sft(tmp_path, "notes.txt"))
    with pytest.raises(UserInputError, match=r"^--output: out \(-> /etc\) is a system folder"):
        check_output(sft(tmp_path, "runs/x"), "out")
    assert (tmp_path / "work" / "notes.txt").read_text() == "mine"


def test_a_folder_of_its_own_is_the_run_directory(tmp_path: Path) -> None:
    assert check_output(sft(tmp_path)) == tmp_path / "work" / "runs" / "sft"
    assert check_output(sft(tmp_path, "out"), "/tmp/x/run") == Path("/tmp/x/run")
    (tmp_path / "work" / "earlier").mkdir()
    assert output_dir_problem(tmp_path / "work" / "earlier") is None
    assert output_dir_problem(tmp_path / "home" / "runs" / "sft") is None
    assert not (tmp_path / "work" / "runs").exists()  # checking creates nothing
