"""scripts/gpu-check.sh for a locked-down GPU host: `prepare` makes bundles that fit a 60 MiB
transfer and never hold the host's torch stack, and `run --smoke` on a CPU stand-in of such a
host (a venv with torch and the host's usual packages, but no trl, datasets or unsloth) installs
them privately and takes the whole check's code path, so a borrowed GPU is never spent on a bug
in the script. Both need PyPI for `prepare` (or pip's cache)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import gpu_bundle  # noqa: E402

HOST_LIKE = [
    "torch", "transformers", "peft", "accelerate", "tokenizers", "safetensors", "numpy",
    "pandas", "pyarrow", "xxhash", "typer", "pyyaml", "jinja2", "huggingface-hub", "matplotlib",
    "tensorboard", "sentencepiece", "rich", "requests", "tqdm", "psutil", "packaging", "regex",
]  # fmt: skip
"""What the H200 host has that the runners use (see scripts/h200-host-packages.txt)."""
CUDA_ONLY = ["triton", "xformers", "torchvision"]
"""Present on a CUDA host; on CPU absent, as in the unsloth cpu image (Unsloth's CPU mode)."""


def test_prepare_for_the_h200_host_makes_small_verified_bundles(tmp_path: Path) -> None:
    out = tmp_path / "bundles"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts/gpu_bundle.py"), "prepare", "--python", "3.12",
         "--out", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((out / "bundle-01/manifest.json").read_text(encoding="utf-8"))
    bundles = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(bundles) == manifest["bundles"] >= 1
    for bundle in bundles:
        assert sum(f.stat().st_size for f in bundle.iterdir()) <= 60 * 2**20, bundle.name
    for row in manifest["files"]:
        assert gpu_bundle.sha256(out / row["bundle"] / row["file"]) == row["sha256"]
    names = {gpu_bundle.norm(w["wheel"].split("-", 1)[0]) for w in manifest["wheels"]}
    assert {"trl", "datasets", "unsloth", "unsloth-zoo", "bitsandbytes"} <= names
    assert not [n for n in names if re.match(r"torch$|triton$|nvidia-", n)]
    host = gpu_bundle.read_pins(gpu_bundle.DEFAULT_HOST)
    assert not names & set(host), "a package the host has was bundled"
    assert all(w["wheel"].endswith(("-none-any.whl", "x86_64.whl")) for w in manifest["wheels"])


def test_install_refuses_damaged_bundles(tmp_path: Path) -> None:
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(os.urandom(3000))
    gpu_bundle.BUNDLE_LIMIT, limit = 1024 * 1024 + 1000, gpu_bundle.BUNDLE_LIMIT
    try:
        manifest = gpu_bundle.pack([wheel], tmp_path / "out")
    finally:
        gpu_bundle.BUNDLE_LIMIT = limit
    assert len(manifest["wheels"][0]["parts"]) == 3  # cut into parts of at most 1000 bytes
    part = tmp_path / "out" / manifest["files"][0]["bundle"] / manifest["files"][0]["file"]
    part.write_bytes(b"x" + part.read_bytes()[1:])
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts/gpu_bundle.py"), "install", "--bundles",
         str(tmp_path / "out"), "--target", str(tmp_path / "site")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "sha256 differs" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "site").exists()


@pytest.mark.training
def test_run_smoke_on_a_cpu_stand_in_host(tmp_path: Path) -> None:
    host = tmp_path / "host"
    subprocess.run([sys.executable, "-m", "venv", str(host)], check=True)
    pip = [
        str(host / "bin/python"),
        "-m",
        "pip",
        "install",
        "-q",
        "-c",
        str(REPO / "constraints.txt"),
    ]
    subprocess.run([*pip, *HOST_LIKE], check=True, timeout=900)
    probe = subprocess.run([str(host / "bin/python"), "-c", "import trl"], check=False)
    assert probe.returncode != 0, "the stand-in host must lack trl: the bundle brings it"
    listed = subprocess.run([str(host / "bin/python"), "-m", "pip", "list", "--format=freeze"],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    host_list = tmp_path / "host-packages.txt"
    host_list.write_text(listed + "\n".join(CUDA_ONLY) + "\n", encoding="utf-8")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text(
        "#!/bin/sh\necho 'name, driver_version'\necho 'stand-in, 0'\n"
    )
    (bin_dir / "nvidia-smi").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"PYTHON": str(host / "bin/python"), "GPU_CHECK_BUNDLES": str(tmp_path / "bundles"),
            "GPU_CHECK_WORK": str(tmp_path / "work"), "ALIGNTUNE_UNSLOTH_ALLOW_CPU": "1",
            "PATH": f"{bin_dir}:{env['PATH']}"}  # fmt: skip
    script = str(REPO / "scripts/gpu-check.sh")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    prepared = subprocess.run(
        ["bash", script, "prepare", "--python", version, "--host-packages", str(host_list)],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    done = subprocess.run(
        ["bash", script, "run", "--smoke", "--only", "lora-sft", "qlora-sft", "grpo",
         "--recipes", "sft", "grpo"],
        env=env, capture_output=True, text=True, timeout=1500, check=False,
    )  # fmt: skip
    print(done.stdout[-6000:], done.stderr[-3000:])
    assert done.returncode == 0
    results = json.loads((tmp_path / "work/bench/gpu-results.json").read_text(encoding="utf-8"))
    for backend in ("trl", "unsloth"):
        assert results["cases"]["lora-sft"][backend]["tokens_per_s"] > 0
        assert 0 < results["cases"]["grpo"][backend]["generation_share"] < 1
        assert "needs a CUDA GPU" in results["cases"]["qlora-sft"][backend]["not_measured"]
    assert {(r["recipe"], r["backend"], r["status"]) for r in results["recipes"]} == {
        (name, backend, "ok") for name in ("sft", "grpo") for backend in ("trl", "unsloth")
    }
    table = (tmp_path / "work/bench/gpu-results.md").read_text(encoding="utf-8")
    assert "| QLoRA 4-bit SFT, 1.5B | trl | not measured: " in table
    assert "installed" in done.stdout and "wheels into" in done.stdout
