"""How users get aligntune, for real: a local registry (Debian's docker-registry) receives the trl
cpu image the way the release workflow pushes it (`aligntune images publish`, which records the
digest in aligntune-core's package data), the two host wheels are built from that checkout and
installed alone into a fresh virtual environment (no training stack), and that `aligntune` pulls
the image by digest and trains the tiny recipe. A wrong digest and an unreachable registry are
exit 3 with one error line. The local tag is restored afterwards (the same image, by id).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from image_helpers import docker

from aligntune.core.images import MIRROR_ENV, RELEASED_IMAGES_FILE

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
HOST_PACKAGES = ("aligntune-core", "aligntune-cli")
TRAINING_STACK = ("torch", "transformers", "trl", "datasets", "peft", "accelerate")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def local_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's docker-registry serving on a free localhost port (host:port); the engine talks
    plain http to a registry on localhost without any configuration."""
    binary = shutil.which("docker-registry")
    assert binary, "docker-registry missing: bash scripts/setup.sh installs it (apt)"
    folder = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = folder / "config.yml"
    config.write_text(
        "version: 0.1\nlog: {level: warn, accesslog: {disabled: true}}\n"
        f"storage: {{filesystem: {{rootdirectory: {folder / 'store'}}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
    )
    log = (folder / "registry.log").open("wb")
    server = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("docker-registry did not answer within 10 s")
        yield f"localhost:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def timed(label: str, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, **kwargs)  # type: ignore[call-overload]
    print(f"$ {' '.join(args)}  ({label}: {time.monotonic() - started:.1f} s)")
    print(done.stdout[-4000:], done.stderr[-4000:])
    return done


@pytest.fixture(scope="module")
def light_install(
    trl_cpu_image: str, local_registry: str, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A fresh venv holding only the two host wheels, built from a copy of the checkout whose
    released-images file `aligntune images publish` filled (as the release workflow does)."""
    work = tmp_path_factory.mktemp("light")
    for package in HOST_PACKAGES:
        shutil.copytree(
            REPO / "packages" / package,
            work / package,
            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
        )
    record = (
        work
        / "aligntune-core"
        / RELEASED_IMAGES_FILE.relative_to(REPO / "packages" / "aligntune-core")
    )
    publish = timed(
        "push",
        *(sys.executable, "-m", "aligntune.cli.main", "images", "publish", "trl-runner"),
        *("--registry", local_registry, "--record", str(record)),
        cwd=REPO,
    )
    assert publish.returncode == 0
    wheels = work / "wheels"
    built = timed(
        "wheels",
        *(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels)),
        *(str(work / package) for package in HOST_PACKAGES),
    )
    assert built.returncode == 0
    venv = work / "venv"
    started = time.monotonic()
    assert timed("venv", sys.executable, "-m", "venv", str(venv)).returncode == 0
    install = timed(
        "install",
        *(str(venv / "bin" / "pip"), "install", "-q", "-c", str(REPO / "constraints.txt")),
        *(str(wheel) for wheel in sorted(wheels.glob("*.whl"))),
    )
    assert install.returncode == 0
    print(f"light install (venv + two wheels): {time.monotonic() - started:.1f} s")
    return venv


@pytest.fixture(scope="module")
def released_reference(light_install: Path) -> str:
    """The trl cpu image's reference as the light install knows it: registry/repo@digest."""
    version = in_venv(light_install, light_install, "--version")
    (line,) = [line for line in version.stdout.splitlines() if line.startswith("trl-runner cpu:")]
    assert line.endswith("(released)")
    return line.split()[2]


def user_env(venv: Path, **extra: str) -> dict[str, str]:
    """A user's shell with the light install on PATH: nothing of this checkout or its venv."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "HF_TOKEN")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("ALIGNTUNE")}
    return {**env, "PATH": f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}", **extra}


def in_venv(venv: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`aligntune ARGS` from the light install, as a user runs it."""
    command = (str(venv / "bin" / "aligntune"), *args)
    return timed("aligntune", *command, cwd=cwd, env=user_env(venv, **env))


@pytest.fixture
def tag_removed(trl_cpu_image: str, released_reference: str) -> Iterator[str]:
    """The trl cpu image's id, with its local tag (and so the image) removed for the test; the
    tag is put back afterwards on the same image, pulled from the registry when it had to be."""
    image_id = docker("image", "inspect", "-f", "{{.Id}}", trl_cpu_image).stdout.strip()
    assert docker("image", "rm", trl_cpu_image).returncode == 0
    try:
        yield image_id
    finally:
        if docker("image", "inspect", image_id).returncode != 0:
            docker("pull", released_reference, timeout=900)
        assert docker("tag", image_id, trl_cpu_image).returncode == 0
        docker("image", "rm", released_reference)  # the name only: the tag keeps the image


def test_light_install_pulls_by_digest_and_trains(
    light_install: Path,
    local_registry: str,
    released_reference: str,
    tag_removed: str,
    tmp_path: Path,
) -> None:
    venv, reference = light_install, released_reference
    find = f"import importlib.util as u; print([m for m in {TRAINING_STACK!r} if u.find_spec(m)])"
    stack = timed("stack", str(venv / "bin" / "python"), "-c", find, env=user_env(venv))
    assert stack.stdout.strip() == "[]"
    shutil.copytree(REPO / "recipes" / "tiny", tmp_path / "tiny")
    recipe = "tiny/sft.yaml"
    assert reference.startswith(f"{local_registry}/aligntune/trl-runner@sha256:")

    assert in_venv(venv, tmp_path, "validate", recipe).returncode == 0
    plan = in_venv(venv, tmp_path, "plan", recipe)
    assert plan.returncode == 0
    assert re.search(
        rf"image: +{re.escape(reference)} \(will be pulled, \d+\.\d\d GB\)", plan.stdout
    )
    assert f"pinned by digest, from {local_registry}" in plan.stdout
    diagnose = in_venv(venv, tmp_path, "diagnose")
    assert f"the first run pulls {reference}" in diagnose.stdout

    # A release whose digest the registry does not hold, and a mirror that does not answer:
    # exit 3, one error line naming the registry, the hint, nothing written.
    installed = next(
        venv.glob(f"lib/python*/site-packages/aligntune/core/{RELEASED_IMAGES_FILE.name}")
    )
    good = installed.read_text()
    installed.write_text(good.replace(reference.split("@")[1], "sha256:" + "0" * 64))
    wrong = in_venv(venv, tmp_path, "run", recipe, "--output", "wrong")
    installed.write_text(good)
    closed = f"127.0.0.1:{free_port()}"
    unreachable = in_venv(venv, tmp_path, "run", recipe, "--output", "down", **{MIRROR_ENV: closed})
    for failed, registry in ((wrong, local_registry), (unreachable, closed)):
        assert failed.returncode == 3
        errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and f"from the registry {registry}: " in errors[0]
        assert "Traceback" not in failed.stderr
        assert f"docker login {registry}" in failed.stderr
    assert not (tmp_path / "wrong").exists() and not (tmp_path / "down").exists()

    run = in_venv(venv, tmp_path, "run", recipe, "--output", "run", "--quiet")
    assert run.returncode == 0
    assert f"pulled {reference}" in run.stdout
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["status"] == "finished"
    plan_json = json.loads((tmp_path / "run" / "plan.json").read_text())
    assert plan_json["image"] == reference and plan_json["image_source"] == "release"
    assert reference in in_venv(venv, tmp_path, "images", "list").stdout
    # The bits pulled by digest are the image that was pushed.
    pulled_id = docker("image", "inspect", "-f", "{{.Id}}", reference).stdout.strip()
    assert pulled_id == tag_removed
