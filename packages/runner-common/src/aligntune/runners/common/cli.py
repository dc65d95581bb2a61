"""The runners' command line, `python -m aligntune.runners.<backend>`: what the images run.

    run RECIPE --output RUN_DIR [--resume | --restart] [--reference FIELD=PATH ...]
        [--host-path FIELD=PATH ...]
    export RUN_DIR [--format merged|adapter] [--output DIR] [--base PATH] [--base-name NAME]
    selftest

Exit codes: `aligntune.core.errors.ExitCode` (a bad recipe, data or model prints one line per
problem and writes nothing; a crash prints one line and saves its traceback in error.log).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from aligntune.core.algorithm_sections import SFTAlgorithm, algorithm_names
from aligntune.core.checked_data import unchanged
from aligntune.core.data_check import DataSummary
from aligntune.core.errors import DEBUG_ENV, AlignTuneError, ExitCode, UserInputError, error_lines
from aligntune.core.exports import (
    EXPORT_FORMATS,
    check_export_output,
    check_format,
    read_source,
)
from aligntune.core.loader import load_recipe
from aligntune.core.outputdir import check_output
from aligntune.core.paths import HOST_PATH_FLAG, OUTPUT_FIELD, REFERENCE_FLAG, recorded_names
from aligntune.core.plan import GpuInfo, HostInfo, Plan
from aligntune.core.recipe import Recipe
from aligntune.core.rundir import RunDirectory, handed_plan
from aligntune.core.selection import check_backend, select_backend
from aligntune.core.topology import NNODES
from aligntune.runners.common import distributed, lifecycle, torchrun
from aligntune.runners.common.backend import Backend


def make_parser(backend: Backend) -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog=f"python -m {backend.spec.runner_module}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="train a recipe into a run directory")
    run.add_argument("recipe", type=Path, help="recipe YAML file")
    run.add_argument(
        "--output", type=_output, help="run directory (default: the recipe's output.dir)"
    )
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="resume; fail if there is no run")
    mode.add_argument(
        "--restart", action="store_true", help="discard an earlier run and start over"
    )
    run.add_argument(
        REFERENCE_FLAG,
        dest="references",
        action="append",
        type=_reference,
        default=[],
        metavar="FIELD=PATH",
        help="where a local input of the recipe is found here (the launcher's container paths)",
    )
    run.add_argument(
        HOST_PATH_FLAG,
        dest="host_paths",
        action="append",
        type=_reference,
        default=[],
        metavar="FIELD=PATH",
        help="the user's host path of an input (output.dir: the run directory), as the run "
        "directory records it; default: the path here",
    )
    add_export_parser(commands)
    commands.add_parser("selftest", help="train a tiny model for a few steps (no download)")
    return parser


def add_export_parser(commands: Any) -> None:
    """`export`: a finished run's model into a new folder, checked (see export.py)."""
    export = commands.add_parser("export", help="write a finished run's model into a new folder")
    export.add_argument("run_dir", type=Path, help="the run directory")
    export.add_argument("--format", choices=EXPORT_FORMATS, help="default: merged")
    export.add_argument(
        "--output", type=_output, help="a new (or empty) folder (default: RUN_DIR-FORMAT)"
    )
    export.add_argument("--base", help="where the base model is found here (default: the run's)")
    export.add_argument("--base-name", help="how the export names the base (default: the run's)")
    export.add_argument("--run-name", help="how export.json names the run (default: RUN_DIR)")


def _output(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; name the run directory")
    return Path(text)


def _reference(text: str) -> tuple[str, str]:
    field, _, path = text.partition("=")
    if not (field and path):
        raise argparse.ArgumentTypeError(f"{text!r}: expected FIELD=PATH, e.g. data.train.path=/d")
    return field, path


def _host(backend: Backend) -> HostInfo:
    backend.import_stack()
    import torch

    gpus = tuple(GpuInfo(torch.cuda.get_device_name(i)) for i in range(torch.cuda.device_count()))
    return HostInfo(
        gpus=gpus,
        runner_packages=frozenset({backend.name}),
        nnodes=int(os.environ.get(NNODES, "1")),
    )


def plan_for(backend: Backend, recipe: Recipe, run_dir: RunDirectory) -> Plan:
    """The launcher's plan (handed over, else saved in the run directory) when it chose this
    backend, else one made here."""
    saved = handed_plan(backend.name) or run_dir.read_json(run_dir.plan)
    if saved is not None and saved.get("backend") == backend.name:
        return Plan.model_validate(saved)
    return select_backend(recipe, _host(backend), backend=backend.name, runtime="local")


def run(
    backend: Backend,
    recipe_path: Path,
    output: Path | None,
    mode: str,
    references: dict[str, str] | None = None,
    host_paths: dict[str, str] | None = None,
) -> int:
    """Train one recipe, its path fields re-rooted by `references` and recorded by their
    `host_paths`; returns the exit code."""
    # Loaded before importing the stack (seconds): a typo fails fast.
    recipe = load_recipe(recipe_path).with_references(references or {}, host_paths)
    check_output(recipe, output)
    torchrun.adopt_scheduler_topology()
    # What the recipe alone rules out (GSPO on Unsloth) is refused before the stack loads too.
    check_backend(backend.spec, recipe, HostInfo(nnodes=int(os.environ.get(NNODES, "1"))))
    group = torchrun.worker_group(recipe)
    run_dir = RunDirectory(recipe.run_dir(output))
    try:
        with lifecycle.Claim(run_dir, mode) as claim:
            if group is not None:  # several processes: torchrun starts them, each runs this path
                claim.code = torchrun.launch_run(
                    group, backend.name, recipe_path, output, mode, references, host_paths
                )
            else:
                claim.code = train(backend, recipe, run_dir, mode)
            return claim.code
    except AlignTuneError:
        raise
    except Exception as exc:
        return lifecycle.report_crash(exc, run_dir)


def launcher_checked(backend: Backend, recipe: Recipe) -> dict[str, DataSummary]:
    """By field, the data files the launcher that started this runner checked and that are
    unchanged since: its check stands for them (each said once in the log). None without the
    launcher's plan (a runner started by hand checks every file)."""
    known = unchanged(recipe, handed_plan(backend.name))
    for field, summary in known.items() if distributed.is_rank_zero() else ():
        print(
            f"aligntune: {field}: the file is unchanged since the launcher checked its "
            f"{summary.rows} rows; not checked again",
            file=sys.stderr,
        )
    return known


def train(backend: Backend, recipe: Recipe, run_dir: RunDirectory, mode: str) -> int:
    """Train `recipe` in this process into `run_dir`; returns the exit code."""
    backend.import_stack()
    from aligntune.runners.common.trainer import Run

    plan = plan_for(backend, recipe, run_dir)
    distributed.init_worker(plan.device)
    known = launcher_checked(backend, recipe)
    trainer = Run(backend, recipe, plan, run_dir=run_dir.root, mode=mode, checked=known)  # type: ignore[arg-type]
    for warning in trainer.pieces.settings.warnings:
        print(f"aligntune: warning: {warning}", file=sys.stderr)
    metrics = trainer.train()
    loss = metrics.get("loss", metrics.get("train_loss"))
    where = recorded_names(recipe, run_dir.root)[OUTPUT_FIELD]  # the host's name in a container
    print(
        f"aligntune: finished {recipe.run_name} at step {metrics.get('global_step')} "
        f"(loss {loss}); run directory {where}"
    )
    return ExitCode.OK


def selftest(backend: Backend) -> int:
    """Build a tiny model in a temporary folder and train a few SFT steps on it."""
    import json

    from aligntune.core.loader import recipe_from_dict

    backend.import_stack()
    from aligntune.runners.common.tiny import make_model, sft_rows
    from aligntune.runners.common.trainer import Run

    with tempfile.TemporaryDirectory(prefix="aligntune-selftest-") as tmp:
        root = Path(tmp)
        make_model(root / "model")
        lines = "".join(json.dumps(row) + "\n" for row in sft_rows())
        (root / "sft.jsonl").write_text(lines, encoding="utf-8")
        recipe = recipe_from_dict(
            {
                "algorithm": {"name": algorithm_names(SFTAlgorithm)[0]},
                "model": {"name_or_path": "./model", "peft": {"method": "lora", "r": 4}},
                "data": {"train": {"path": "./sft.jsonl"}, "max_length": 48},
                "training": {"max_steps": 3, "batch_size": 4, "learning_rate": 1e-2},
            },
            source="selftest",
            base_dir=root,
        )
        plan = select_backend(recipe, _host(backend), backend=backend.name, runtime="local")
        metrics = Run(backend, recipe, plan, run_dir=root / "run").train()
        ok = (root / "run" / "final").is_dir() and metrics.get("global_step") == 3
    print(
        f"aligntune {backend.name} runner selftest: {'ok' if ok else 'FAILED'} "
        f"(device {plan.device}, 3 SFT steps, loss {metrics.get('loss')})"
    )
    return ExitCode.OK if ok else ExitCode.CRASH


def export(backend: Backend, args: argparse.Namespace) -> int:
    """Export one finished run (checked again here, where the weights are read)."""
    source = read_source(args.run_dir)
    fmt = check_format(source, args.format)
    output = args.output or source.default_output(fmt)
    if not output.exists():
        check_export_output(output, source.run_dir)
    elif not output.is_dir() or any(output.iterdir()):  # an empty folder: the launcher's staging
        raise UserInputError(
            f"{output} already exists and is not empty; an export never writes over a folder",
            hint="choose another --output",
        )
    backend.import_stack()
    from aligntune.runners.common.export import ExportJob, base_folder, run_export

    job = ExportJob(
        source=source,
        fmt=fmt,
        base_dir=base_folder(source, args.base) if source.adapter else None,
        base_name=args.base_name or source.base,
        run_name=args.run_name or str(source.run_dir),
        output=output,
    )
    # SIGTERM (docker stop; the local launcher ending) unwinds like Ctrl-C: written_whole then
    # removes what was written instead of leaving half an export behind.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    run_export(job, backend.name)
    print(f"aligntune: wrote the {fmt} export")
    return ExitCode.OK


BNB_CPU_LOGGER = "bitsandbytes.backends.cpu.ops"
"""bitsandbytes' CPU backend warns when it is imported, on CPUs with AVX512-BF16, that an optional
hub kernel (package `kernels`) is missing, and uses its own: noise before the run's first line."""


def main(backend: Backend, argv: list[str] | None = None) -> int:
    """Parse arguments, run the command, map outcomes to exit codes."""
    logging.getLogger(BNB_CPU_LOGGER).setLevel(logging.ERROR)
    args = make_parser(backend).parse_args(argv)
    try:
        if args.command == "selftest":
            return selftest(backend)
        if args.command == "export":
            return export(backend, args)
        mode = "restart" if args.restart else "resume" if args.resume else "auto"
        references, host_paths = dict(args.references), dict(args.host_paths)
        return run(backend, args.recipe, args.output, mode, references, host_paths)
    except AlignTuneError as exc:
        print("\n".join(error_lines(exc)), file=sys.stderr)
        if os.environ.get(DEBUG_ENV) == "1":
            traceback.print_exc()
        return exc.exit_code
    except KeyboardInterrupt:
        if args.command == "export":  # written_whole removed what it had written
            print("error: interrupted; the export wrote nothing", file=sys.stderr)
        else:
            print("error: interrupted twice; stopped without saving", file=sys.stderr)
        return ExitCode.INTERRUPTED_SIGINT
    except Exception as exc:
        return lifecycle.report_crash(exc, None)
