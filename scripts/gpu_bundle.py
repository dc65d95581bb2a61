"""Bundles of the wheels a locked-down GPU host lacks, for `scripts/gpu-check.sh prepare|run`.

    python scripts/gpu_bundle.py prepare --out DIR [--python 3.12] [--host-packages FILE]
    python scripts/gpu_bundle.py install --bundles DIR --target PRIVATE_DIR

`prepare` (any machine with pip and PyPI) resolves what the runners need (the aligntune
packages' dependencies plus bitsandbytes, pinned by the images' cuda locks) against the host's
packages, downloads only the wheels the host lacks for its Python on manylinux x86_64, and packs
them into folders `DIR/bundle-NN` of at most 60 MiB each; a wheel bigger than that is cut into
parts. Every bundle holds the same `manifest.json` (each file's bundle, size and sha256).

The host's packages are given as `pip list --format=freeze` lines; a bare name means "installed,
version unknown". Resolution runs in a throwaway venv in which each host package is a stub
dist-info, so pip takes it as installed and never fetches its wheel (torch, nvidia-*, triton).
An unknown version is stubbed at our locks' pin where the locks pin it (assumed to be the stack
it was locked against), else at 0 (still never downloaded): `install` then reports any
requirement the host's real versions miss, and `gpu-check.sh run` saves the host's real list.

`install` (on the host, no network) checks every file against the manifest, rejoins parts,
refuses torch, triton and nvidia-* wheels, and installs with `pip --no-index --no-deps --target`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MiB = 2**20
BUNDLE_LIMIT = 60 * MiB
DEFAULT_HOST = Path(__file__).with_name("h200-host-packages.txt")
LOCKS = [
    ROOT / f"images/{image}/requirements-cuda.lock" for image in ("unsloth-runner", "trl-runner")
]
"""Pins of everything the host lacks; the first lock naming a package wins."""
EXTRA = ["bitsandbytes"]
"""Needed beyond the packages' own dependencies: QLoRA on the TRL backend."""
NEVER_BUNDLED = re.compile(r"^(torch|triton|nvidia-.*)$")
"""The host's own CUDA stack: a bundle holding one of these would shadow it."""
PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in (28, 27, 24, 17)] + ["manylinux2014_x86_64"]


def norm(name: str) -> str:
    """A distribution name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str | None]:
    """`name==version` (local label dropped) or a bare `name` (None) per line of a freeze file."""
    pins: dict[str, str | None] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, version = line.partition("==")
        pins[norm(name)] = version.split("+", 1)[0].strip() or None
    return pins


def needed() -> list[str]:
    """The requirements of the aligntune packages that run on the host, aligntune-* left out."""
    reqs = list(EXTRA)
    for project in sorted(ROOT.glob("packages/*/pyproject.toml")):
        data = tomllib.loads(project.read_text(encoding="utf-8"))
        if data["project"]["name"] == "aligntune-cli":
            continue  # the launcher: not used on the GPU host
        reqs += [r for r in data["project"]["dependencies"] if not r.startswith("aligntune")]
    return reqs


def lock_pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for lock in LOCKS:
        for name, version in read_pins(lock).items():
            if version:
                pins.setdefault(name, version)
    return pins


def resolve(python: str, host: dict[str, str | None], work: Path) -> list[dict]:
    """pip's report entries for what the host lacks, host packages stubbed as installed."""
    locked = lock_pins()
    stubs = work / "stubs"
    for name, version in host.items():
        info = stubs / f"{name.replace('-', '_')}-{version or locked.get(name, '0')}.dist-info"
        info.mkdir(parents=True)
        stub_version = info.name.rsplit("-", 1)[1].removesuffix(".dist-info")
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {stub_version}\n", encoding="utf-8"
        )
    reqs = sorted(
        {r for r in needed() if norm(re.split(r"[<>=!~ ;\[]", r, maxsplit=1)[0]) not in host}
    )
    (work / "requirements.txt").write_text("\n".join(reqs) + "\n", encoding="utf-8")
    constraints = [f"{n}=={v}" for n, v in sorted(locked.items()) if n not in host]
    (work / "constraints.txt").write_text("\n".join(constraints) + "\n", encoding="utf-8")
    # A venv holding only pip: nothing of the machine running `prepare` counts as installed.
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin/python"), "-m", "pip"]
    subprocess.run([*pip, "install", "-q", "pip>=24.1"], check=True)  # --dry-run with --platform
    target = ["--python-version", python, "--implementation", "cp", "--only-binary=:all:"]
    target += [arg for p in PLATFORMS for arg in ("--platform", p)]
    report = work / "report.json"
    subprocess.run(
        [*pip, "install", "-q", "--dry-run", "--report", str(report), *target,
         "-r", str(work / "requirements.txt"), "-c", str(work / "constraints.txt")],
        check=True, env={**os.environ, "PYTHONPATH": str(stubs)},
    )  # fmt: skip
    entries = json.loads(report.read_text(encoding="utf-8"))["install"]
    return [e for e in entries if norm(e["metadata"]["name"]) not in host]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(MiB), b""):
            digest.update(block)
    return digest.hexdigest()


def download(python: str, entries: list[dict], work: Path) -> list[Path]:
    """The report's wheels, fetched by pip (its cache counts), each checked against its sha256."""
    pins = [f"{e['metadata']['name']}=={e['metadata']['version']}" for e in entries]
    wheels = work / "wheels"
    target = ["--python-version", python, "--implementation", "cp", "--only-binary=:all:"]
    target += [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run(
        [str(work / "venv/bin/python"), "-m", "pip", "download", "-q", "--no-deps", *target,
         "-d", str(wheels), *pins],
        check=True,
    )  # fmt: skip
    expected = {
        e["download_info"]["url"].rsplit("/", 1)[1]: e["download_info"]["archive_info"]["hashes"]
        for e in entries
    }
    files = sorted(wheels.glob("*.whl"))
    for file in files:
        want = expected.get(file.name, {}).get("sha256")
        if want and sha256(file) != want:
            raise SystemExit(f"{file.name}: sha256 differs from pip's report ({want})")
    return files


def pack(wheels: list[Path], out: Path) -> dict:
    """Wheels and parts into bundle-NN folders of <= BUNDLE_LIMIT; the manifest (also saved)."""
    room = BUNDLE_LIMIT - MiB  # a bundle's share for wheels: the rest is the manifest's
    pieces: list[tuple[Path, str, int, int]] = []  # source, name in the bundle, offset, size
    wheel_rows = []
    for wheel in wheels:
        size = wheel.stat().st_size
        if NEVER_BUNDLED.match(norm(wheel.name.split("-", 1)[0])):
            raise SystemExit(f"{wheel.name}: the host's own CUDA stack is never bundled")
        count = -(-size // room)
        names = [wheel.name] if count == 1 else [f"{wheel.name}.part{i:02d}" for i in range(count)]
        for i, name in enumerate(names):
            start = i * room
            pieces.append((wheel, name, start, min(room, size - start)))
        wheel_rows.append({"wheel": wheel.name, "size": size, "sha256": sha256(wheel),
                           "parts": names if count > 1 else []})  # fmt: skip
    bundles: list[list[tuple[Path, str, int, int]]] = []
    for piece in sorted(pieces, key=lambda p: -p[3]):  # first fit, largest first
        for bundle in bundles:
            if sum(p[3] for p in bundle) + piece[3] <= room:
                bundle.append(piece)
                break
        else:
            bundles.append([piece])
    files = []
    for number, bundle in enumerate(bundles, 1):
        folder = out / f"bundle-{number:02d}"
        folder.mkdir(parents=True)
        for source, name, start, size in bundle:
            with source.open("rb") as handle:
                handle.seek(start)
                (folder / name).write_bytes(handle.read(size))
            files.append({"file": name, "bundle": folder.name, "size": size,
                          "sha256": sha256(folder / name)})  # fmt: skip
    manifest = {"bundles": len(bundles), "files": files, "wheels": wheel_rows}
    for number in range(1, len(bundles) + 1):
        text = json.dumps(manifest, indent=1) + "\n"
        (out / f"bundle-{number:02d}" / "manifest.json").write_text(text, encoding="utf-8")
    return manifest


def prepare(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out}: not empty; prepare writes a fresh set of bundles")
    host = read_pins(args.host_packages)
    with tempfile.TemporaryDirectory(prefix="gpu-bundle-") as tmp:
        entries = resolve(args.python, host, Path(tmp))
        refused = [
            e["metadata"]["name"]
            for e in entries
            if NEVER_BUNDLED.match(norm(e["metadata"]["name"]))
        ]
        if refused:
            raise SystemExit(f"resolution wants {', '.join(refused)}: add them to the host list")
        manifest = pack(download(args.python, entries, Path(tmp)), out)
    total = sum(f["size"] for f in manifest["files"])
    largest = max(f["size"] for f in manifest["files"]) / MiB
    print(f"{len(manifest['wheels'])} wheels, {total / MiB:.1f} MiB in {manifest['bundles']} "
          f"bundles under {out} (largest file {largest:.1f} MiB)")  # fmt: skip
    return 0


def install(args: argparse.Namespace) -> int:
    """Check the bundles against their manifest, rejoin, install into the private target."""
    manifests = sorted(args.bundles.glob("bundle-*/manifest.json"))
    if not manifests:
        raise SystemExit(f"{args.bundles}: no bundle-NN/manifest.json (run `prepare` first)")
    manifest = json.loads(manifests[0].read_text(encoding="utf-8"))
    problems = []
    for row in manifest["files"]:
        path = args.bundles / row["bundle"] / row["file"]
        if not path.is_file():
            problems.append(f"{row['bundle']}/{row['file']}: missing")
        elif path.stat().st_size != row["size"] or sha256(path) != row["sha256"]:
            problems.append(f"{row['bundle']}/{row['file']}: size or sha256 differs")
    if problems:
        raise SystemExit("bundles incomplete or damaged:\n  " + "\n  ".join(problems))
    where = {row["file"]: args.bundles / row["bundle"] / row["file"] for row in manifest["files"]}
    with tempfile.TemporaryDirectory(prefix="gpu-wheels-") as tmp:
        wheels = []
        for row in manifest["wheels"]:
            if NEVER_BUNDLED.match(norm(row["wheel"].split("-", 1)[0])):
                raise SystemExit(
                    f"{row['wheel']}: refused, the host's torch/CUDA stack stays as it is"
                )
            wheel = Path(tmp) / row["wheel"]
            with wheel.open("wb") as handle:
                for part in row["parts"] or [row["wheel"]]:
                    handle.write(where[part].read_bytes())
            if sha256(wheel) != row["sha256"]:
                raise SystemExit(f"{row['wheel']}: rejoined sha256 differs from the manifest")
            wheels.append(str(wheel))
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                        "--no-compile", "--upgrade", "--target", str(args.target), *wheels],
                       check=True)  # fmt: skip
    print(f"installed {len(wheels)} wheels into {args.target}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="resolve and download the missing wheels into bundles")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--python", default="3.12", help="the host's Python version (default 3.12)")
    p.add_argument("--host-packages", type=Path, default=DEFAULT_HOST,
                   help="the host's `pip list --format=freeze` (default: H200 host)")  # fmt: skip
    i = sub.add_parser("install", help="verify the bundles and install them (no network)")
    i.add_argument("--bundles", type=Path, required=True)
    i.add_argument("--target", type=Path, required=True)
    args = parser.parse_args()
    return prepare(args) if args.command == "prepare" else install(args)


if __name__ == "__main__":
    sys.exit(main())
