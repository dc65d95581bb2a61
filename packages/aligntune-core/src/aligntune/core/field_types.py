"""The recipe's field types that say more than Python's: numbers that YAML 1.1 may hand over as
text.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_EXPONENT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+")


def _exponent_number(value: Any) -> Any:
    """YAML 1.1 reads `1e-4` (no dot) as text; every user means the number."""
    return float(value) if isinstance(value, str) and _EXPONENT.fullmatch(value) else value


Number = Annotated[float, BeforeValidator(_exponent_number)]
"""A float: a number, or text in exponent form (`1e-4`); never a boolean (finite: `Section`)."""
