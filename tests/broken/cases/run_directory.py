"""Run-directory mistakes `aligntune run` catches before anything is written or started: an output
that holds someone else's files (never written over, never deleted by --restart), an output that
cannot be made, and flags that do not fit the directory. Only `run` looks at the output."""

from broken_harness import Case, recipe

from aligntune.core.errors import ExitCode

RUN = ("run", "recipe.yaml")
LOCAL = ("--runtime", "local")
NOT_OURS = (
    r"{dir}/{folder} holds files and is not an aligntune run directory \(no \.aligntune-run\)"
)


def not_ours(folder: str, action: str) -> str:
    """The refusal of a folder aligntune did not make."""
    return NOT_OURS.replace("{folder}", folder) + f"; {action} files aligntune did not write"


RESTART = "--restart would delete"
WRITE = "a run would write among"

CASES = [
    Case(
        "restart-into-a-project-folder",
        {"recipe.yaml": recipe(), "project/train.py": "print('mine')\n"},
        not_ours("project", RESTART),
        commands=((*RUN, "--output", "project", "--restart"),),
    ),
    Case(
        "restart-into-a-project-folder-local",
        {"recipe.yaml": recipe(), "project/train.py": "print('mine')\n"},
        not_ours("project", RESTART),
        commands=((*RUN, "--output", "project", "--restart", *LOCAL),),
    ),
    Case(
        "restart-into-the-recipe-folder",
        {"recipe.yaml": recipe()},
        r"{dir} holds files and is not an aligntune run directory.*--restart would delete",
        commands=((*RUN, "--output", ".", "--restart"),),
    ),
    Case(
        "restart-into-another-trainers-output",
        {
            "recipe.yaml": recipe(),
            "hf_out/checkpoints/checkpoint-500/trainer_state.json": "{}",
            "hf_out/final/model.safetensors": b"\x00" * 64,
            "hf_out/status.json": '{"status": "done"}',
        },
        not_ours("hf_out", RESTART),
        commands=((*RUN, "--output", "hf_out", "--restart"),),
    ),
    Case(
        "restart-into-a-git-checkout",
        {"recipe.yaml": recipe(), "repo/.git/HEAD": "ref: refs/heads/main\n"},
        not_ours("repo", RESTART),
        commands=((*RUN, "--output", "repo", "--restart"),),
    ),
    Case(
        "restart-an-unmarked-older-run",
        {
            "recipe.yaml": recipe(),
            "run/plan.json": "{}",
            "run/manifest.json": "{}",
            "run/checkpoints/checkpoint-2/trainer_state.json": "{}",
        },
        r"hint: choose a new or empty --output \(an older aligntune's run: "
        r"touch {dir}/run/\.aligntune-run\)",
        commands=((*RUN, "--output", "run", "--restart"),),
    ),
    Case(
        "run-into-a-folder-of-notes",
        {"recipe.yaml": recipe(), "notes/todo.txt": "write the paper\n"},
        not_ours("notes", WRITE),
        commands=((*RUN, "--output", "notes"),),
    ),
    Case(
        "output-dir-field-is-the-data-folder",
        {"recipe.yaml": recipe(output={"dir": "./data"}), "data/train.jsonl": '{"text": "x"}\n'},
        not_ours("data", WRITE),
        commands=(RUN,),
    ),
    Case(
        "resume-into-a-folder-of-notes",
        {"recipe.yaml": recipe(), "notes/todo.txt": "write the paper\n"},
        not_ours("notes", WRITE),
        commands=((*RUN, "--output", "notes", "--resume"),),
    ),
    Case(
        "output-empty",
        {"recipe.yaml": recipe()},
        r"Invalid value for '--output' / '-o': an empty path; name the run directory",
        commands=((*RUN, "--output", ""),),
        exit_code=ExitCode.USAGE,
    ),
    Case(
        "output-blank",
        {"recipe.yaml": recipe()},
        r"Invalid value for '--output' / '-o': an empty path",
        commands=((*RUN, "-o", "   ", "--restart"),),
        exit_code=ExitCode.USAGE,
    ),
    Case(
        "output-under-a-file",
        {"recipe.yaml": recipe(), "notes.txt": "x\n"},
        r"error: cannot write {dir}/notes\.txt/run: {dir}/notes\.txt is a file\n"
        r"hint: a file stands where a folder is needed",
        commands=((*RUN, "--output", "notes.txt/run"),),
    ),
    Case(
        "output-dir-field-under-the-recipe-file",
        {"recipe.yaml": recipe(output={"dir": "recipe.yaml/out"})},
        r"cannot write {dir}/recipe\.yaml/out: {dir}/recipe\.yaml is a file",
        commands=(RUN, (*RUN, *LOCAL)),
    ),
    Case(
        "output-name-too-long",
        {"recipe.yaml": recipe()},
        r"error: cannot write {dir}/a{{300}}: File name too long",
        commands=((*RUN, "--output", "a" * 300),),
    ),
    Case(
        "resume-with-nothing-to-resume",
        {"recipe.yaml": recipe()},
        r"--resume: {dir}/runs/new holds no earlier run",
        commands=((*RUN, "--output", "runs/new", "--resume"),),
        exit_code=ExitCode.USAGE,
    ),
    Case(
        "resume-and-restart-together",
        {"recipe.yaml": recipe()},
        r"use --resume or --restart, not both",
        commands=((*RUN, "--resume", "--restart"),),
        exit_code=ExitCode.USAGE,
    ),
    Case(
        "another-backend-for-an-existing-run",
        {"recipe.yaml": recipe(), "run/.aligntune-run": "", "run/plan.json": '{"backend": "trl"}'},
        r"{dir}/run was trained with backend trl; --backend unsloth would mix two runs\n"
        r"hint: use --restart to start this directory over, or another --output",
        commands=((*RUN, "--output", "run", "--backend", "unsloth"),),
        exit_code=ExitCode.USAGE,
    ),
]

CASES += [
    Case(
        "user-not-numeric",
        {"recipe.yaml": recipe()},
        r"--user 'alice': use a numeric UID or UID:GID",
        commands=((*RUN, "--user", "alice"),),
        exit_code=ExitCode.USAGE,
    ),
    Case(
        "gpus-not-a-device",
        {"recipe.yaml": recipe()},
        r"--gpus 'banana': use all, a count such as 2, or device=0,1 \(GPU indexes or UUIDs\)",
        commands=((*RUN, "--gpus", "banana"),),
        exit_code=ExitCode.USAGE,
    ),
    Case(
        "user-with-local-runtime",
        {"recipe.yaml": recipe()},
        r"--user applies to the docker runtime",
        commands=((*RUN, "--user", "1000:1000", "--runtime", "local"),),
        exit_code=ExitCode.USAGE,
    ),
]
