"""`aligntune export` mistakes, caught on the host before any container starts: a run that is
missing, unfinished, without final/ or not aligntune's; an output that exists or lies inside the
run; a format the run or the image cannot give. The run directory is never touched."""

import json

import yaml
from broken_harness import TINY, Case

from aligntune.core.errors import ExitCode


def run_files(
    status: str | None = "finished", final: bool = True, method: str = "lora", base: str = ""
) -> dict[str, str]:
    """The files of a run directory `run/` as `aligntune run --runtime local` leaves them."""
    recipe = {
        "name": "tiny-sft",
        "algorithm": {"name": "sft"},
        "model": {"name_or_path": base or str(TINY / "model"), "peft": {"method": method}},
    }
    files = {
        "run/.aligntune-run": "{}\n",
        "run/plan.json": json.dumps(
            {"backend": "trl", "device": "cpu", "image": None, "launch": {"runtime": "local"}}
        ),
        "run/recipe.resolved.yaml": yaml.safe_dump(recipe),
        "run/trainer_settings.json": json.dumps({"model_init": {"dtype": "float32"}}),
    }
    if status is not None:
        files["run/status.json"] = json.dumps({"status": status, "step": 3})
    if final:
        files["run/final/adapter_config.json"] = "{}\n"
    return files


EXPORT = ("export", "run")

CASES = [
    Case(
        "export-a-missing-run-directory",
        {},
        r"^error: nothere: no such run directory\nhint: name the folder `aligntune run` wrote",
        commands=(("export", "nothere"),),
    ),
    Case(
        "export-a-folder-aligntune-did-not-make",
        {"notes/todo.txt": "x\n"},
        r"error: notes is not an aligntune run directory \(no \.aligntune-run\)",
        commands=(("export", "notes"),),
    ),
    Case(
        "export-a-run-still-training",
        run_files(status="running", final=False),
        r"error: run: the run is running, not finished; only a finished run has a final model",
        commands=(EXPORT,),
    ),
    Case(
        "export-an-interrupted-run",
        run_files(status="interrupted", final=False),
        r"error: run: the run is interrupted, not finished.*\nhint: finish it first",
        commands=(EXPORT, (*EXPORT, "--runtime", "local")),
    ),
    Case(
        "export-a-run-that-never-started",
        run_files(status=None, final=False),
        r"error: run: the run is not started, not finished",
        commands=(EXPORT,),
    ),
    Case(
        "export-a-run-without-final",
        run_files(final=False),
        r"error: run: the run finished without final/ \(output.save_final was false\)",
        commands=(EXPORT,),
    ),
    Case(
        "export-a-run-whose-status-was-cut-short",
        {**run_files(), "run/status.json": '{"status": "fini'},
        r"^error: {dir}/run/status.json is damaged: Unterminated string .*\nhint: restore it",
        commands=(EXPORT, (*EXPORT, "--runtime", "local")),
    ),
    Case(
        "export-a-run-whose-saved-recipe-was-cut-short",
        {**run_files(), "run/recipe.resolved.yaml": "model: {name_or_path: [x\n"},
        r"^error: {dir}/run/recipe.resolved.yaml cannot be read: while parsing a flow sequence",
        commands=(EXPORT,),
    ),
    Case(
        "export-over-an-existing-folder",
        {**run_files(), "run-merged/model.safetensors": b"\x00" * 8},
        r"error: ({dir}/)?run-merged already exists; an export never writes over a folder",
        commands=(EXPORT, ("export", "run", "-o", "run-merged", "--runtime", "local")),
    ),
    Case(
        "export-into-the-run-directory",
        run_files(),
        r"error: --output run/export is inside the run directory {dir}/run; an export never "
        r"touches the run",
        commands=((*EXPORT, "-o", "run/export"),),
    ),
    Case(
        "export-into-a-folder-that-does-not-exist",
        run_files(),
        r"error: --output a/b/c: the folder {dir}/a/b does not exist",
        commands=((*EXPORT, "-o", "a/b/c"),),
    ),
    Case(
        "export-an-adapter-of-a-full-fine-tune",
        run_files(method="full"),
        r"error: {dir}/run is a full fine-tune: it has no adapter to export",
        commands=((*EXPORT, "--format", "adapter"),),
    ),
    Case(
        "export-a-run-whose-base-model-is-gone",
        run_files(base="/nonexistent/base-model"),
        r"error: the base model /nonexistent/base-model is not there any more",
        commands=(EXPORT,),
    ),
    Case(
        "export-an-unknown-format",
        run_files(),
        r"error: --format 'onnx': use merged, adapter, gguf",
        commands=((*EXPORT, "--format", "onnx"),),
        exit_code=ExitCode.USAGE,
    ),
    Case(
        "export-locally-as-another-user",
        run_files(),
        r"error: --user applies to the docker runtime; the runner runs as you",
        commands=((*EXPORT, "--runtime", "local", "--user", "1000"),),
        exit_code=ExitCode.USAGE,
    ),
    Case(
        "export-gguf",
        run_files(),
        r"error: gguf export is not available in this image.*\nhint: export --format merged, "
        r"then convert",
        commands=((*EXPORT, "--format", "gguf"), (*EXPORT, "-f", "gguf", "--runtime", "local")),
        exit_code=ExitCode.UNAVAILABLE,
    ),
    Case(
        "export-with-no-docker-engine",
        run_files(),
        r"error: the docker engine is not reachable .*\nhint: start it .*or export with "
        r"--runtime local",
        commands=(EXPORT,),
        exit_code=ExitCode.UNAVAILABLE,
    ),
]
