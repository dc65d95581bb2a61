"""`aligntune images build|publish|list`: the runner images in the local engine and in a registry
(the work is in `images.py` and `publish.py`, imported only when a command runs)."""

from pathlib import Path
from typing import Annotated

import typer

from aligntune.cli.options import IMAGE_NAMES

images_app = typer.Typer(help="Build and list the runner images.", no_args_is_help=True)


@images_app.command("build")
def images_build(
    image: Annotated[str, typer.Argument(help=" or ".join(IMAGE_NAMES) + ".")] = IMAGE_NAMES[0],
    device: Annotated[str | None, typer.Option(help="cpu or cuda (default: cpu).")] = None,
    base_image: Annotated[
        str | None, typer.Option(help="Base image (default: the public one, else a local one).")
    ] = None,
) -> None:
    """Build a runner image from this checkout (no registry needed)."""
    from aligntune.cli.images import build_image

    build_image(image, device, base_image)


@images_app.command("publish")
def images_publish(
    image: Annotated[str, typer.Argument(help=" or ".join(IMAGE_NAMES) + ".")],
    registry: Annotated[
        str, typer.Option(help="The registry host[:port] to push to.", show_default=False)
    ],
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    record: Annotated[
        Path | None,
        typer.Option(
            help="The released-images file to record the digest in (default: the "
            "checkout's, which the aligntune-core wheel packages)."
        ),
    ] = None,
) -> None:
    """Push a local build to a registry and record its digest for the release (maintainers)."""
    from aligntune.cli.publish import publish_image

    publish_image(image, device, registry, record)


@images_app.command("list")
def images_list() -> None:
    """The aligntune images in the docker engine, with device, size and lock hash."""
    from aligntune.cli.images import list_images

    typer.echo("\n".join(list_images()))
