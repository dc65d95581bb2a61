"""What aligntune's runners share: recipe -> TRL trainer -> run directory, minus the backend.

Each runner (`aligntune.runners.trl`, `aligntune.runners.unsloth`) supplies one `Backend` (see
`backend.py`): how it loads the policy and what it checks or adds. Everything else, the run
directory's files and events, resume, exit codes and the CLI, lives here once.

Importing this package (or `backend`, `cli`, `settings`) loads no torch, transformers or trl, so
the Unsloth runner can import `unsloth` before any of them.
"""

from aligntune.core.version import VERSION as __version__

__all__ = ["__version__"]
