"""Local json, jsonl and csv files read row by row with the standard library.

JSON Lines are read in blocks of whole lines and each line is decoded with `json`'s C decoder:
that decoding is nearly all a data check costs (docs/benchmarks.md). A `.json` file holding one
list is decoded whole, element by element for their lines; CSV goes through `csv`. A line that
cannot be read goes to the caller's `Problems`, and reading goes on, so one run names every bad
line (up to `data_rows.MAX_PROBLEMS`).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Generator, Iterator
from itertools import zip_longest
from pathlib import Path
from typing import IO, Any

from aligntune.core.data_rows import Problems, nonfinite_field, surrogate_field

BLOCK_BYTES = 8 << 20
"""JSON Lines are read in blocks of about this many bytes, cut after a newline."""

_SPACE = re.compile(r"[ \t\n\r]*")
"""JSON's whitespace."""
_TOO_DEEP = "JSON nested too deeply to read"
_LINES_HINT = (
    "each line of a .jsonl file must be one JSON object; a .json file may also hold a list"
)

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
"""The JSON escape of a UTF-16 surrogate, the only way a lone one gets into decoded text: a
block is searched once (far cheaper than each line), its rows only where it has one."""
_INNER_BOM = (
    "a byte-order mark (U+FEFF) starts this line, as when files saved with one are joined "
    "(cat a.jsonl b.jsonl); only a file's first line may have one: remove it"
)

_FIELD_LIMIT = 2**31 - 1
"""The largest CSV field `csv` accepts on every platform (a C long)."""

Row = tuple[int, Any]
"""(line number, decoded row)."""


class _Json:
    """`json`'s decoder, noting NaN and Infinity: Python reads them, Arrow and JSON do not."""

    def __init__(self) -> None:
        self.constants: list[str] = []
        self.decoder = json.JSONDecoder(parse_constant=self._constant)

    def _constant(self, name: str) -> float:
        self.constants.append(name)
        return float(name)

    def nonfinite(self, row: Any) -> str:
        """The problem of a row in which the decoder met NaN or Infinity."""
        name = self.constants[0]
        self.constants.clear()
        field = nonfinite_field(row) or "value"
        return f"{field}: {name} is not valid JSON; write null or a number"


def _utf8_problem(raw: bytes, exc: UnicodeDecodeError) -> str:
    return (
        f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the line); "
        "save the file as UTF-8"
    )


def _surrogate(row: Any) -> str | None:
    """The problem of a row holding a lone surrogate escape, or None."""
    field = surrogate_field(row)
    if field is None:
        return None
    return (
        f"{field or 'value'}: a lone surrogate escape (\\ud800-\\udfff without its pair) is not "
        "text; UTF-8, which the trainer's table stores, cannot hold it"
    )


def _block_lines(block: bytes, first: int, problems: Problems) -> list[str]:
    """A block's lines as text; a line that is not UTF-8 is reported and left blank."""
    try:
        return block.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        lines = []
        for offset, raw in enumerate(block.split(b"\n")):
            try:
                lines.append(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                problems.add(first + offset, _utf8_problem(raw, exc))
                lines.append("")
        return lines


def blocks(handle: IO[bytes]) -> Iterator[bytes]:
    """The file in blocks of whole lines; only the last may lack its newline."""
    tail = b""
    while block := handle.read(BLOCK_BYTES):
        block = tail + block
        cut = block.rfind(b"\n") + 1
        tail = block[cut:]
        if cut:
            yield block[:cut]
    if tail:
        yield tail


def _jsonl_rows(handle: IO[bytes], problems: Problems) -> Iterator[Row]:
    parser = _Json()
    # The C scanner alone: `decode` adds two regex matches a line, which cost as much as the scan.
    # `scan_once` is set by every JSONDecoder since Python 2.6; typeshed does not declare it.
    scan = parser.decoder.scan_once  # type: ignore[attr-defined]
    decode, constants = parser.decoder.decode, parser.constants
    first = 1
    for block in blocks(handle):
        lines = _block_lines(block, first, problems)
        escapes = _SURROGATE_ESCAPE.search(block) is not None
        if first == 1:
            lines[0] = lines[0].removeprefix("\ufeff")  # Arrow reads past a byte-order mark too
        cut_off = len(lines) - 1 if not block.endswith(b"\n") else -1
        for offset, text in enumerate(lines):
            try:
                row, end = scan(text, 0)
                if end != len(text) and not text[end:].isspace():
                    raise ValueError(end)
            except (StopIteration, ValueError):
                if not text or text.isspace():
                    continue
                if text.startswith("\ufeff"):
                    problems.add(first + offset, _INNER_BOM)
                    continue
                try:
                    row = decode(text)  # a blank start, or an error to name
                except json.JSONDecodeError as exc:
                    end_text = "; the file ends inside this line: was it completely written?"
                    what = f"invalid JSON: {exc.msg} (column {exc.colno})"
                    problems.add(first + offset, what + (end_text if offset == cut_off else ""))
                    problems.hint = _LINES_HINT
                    continue
            except RecursionError:
                problems.add(first + offset, _TOO_DEEP)
                continue
            if constants:
                problems.add(first + offset, parser.nonfinite(row))
                continue
            if escapes and (half := _surrogate(row)):
                problems.add(first + offset, half)
                continue
            yield first + offset, row
        first += len(lines) - 1


def _skip_space(text: str, index: int) -> int:
    """The index of the first character at or after `index` that is not JSON whitespace."""
    match = _SPACE.match(text, index)
    return match.end() if match else index


def _json_list_rows(data: bytes, problems: Problems) -> Iterator[Row]:
    """The elements of a file holding one JSON list, each with the line it starts on."""
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        problems.add(data.count(b"\n", 0, exc.start) + 1, _utf8_problem(data, exc))
        return
    parser = _Json()
    escapes = _SURROGATE_ESCAPE.search(data) is not None
    index = _skip_space(text, _skip_space(text, 0) + 1)  # past the opening [
    line, counted = 1, 0
    if text.startswith("]", index):
        return
    while True:
        line, counted = line + text.count("\n", counted, index), index
        try:
            row, index = parser.decoder.raw_decode(text, index)
        except json.JSONDecodeError as exc:
            problems.add(exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})")
            return
        except RecursionError:
            problems.add(line, _TOO_DEEP)
            return
        if parser.constants:
            problems.add(line, parser.nonfinite(row))
        elif escapes and (half := _surrogate(row)):
            problems.add(line, half)
        else:
            yield line, row
        index = _skip_space(text, index)
        if not text.startswith(",", index):
            break
        index = _skip_space(text, index + 1)
    where = line + text.count("\n", counted, index)
    if not text.startswith("]", index):
        problems.add(where, "invalid JSON: expected , or ] after a row of the list")
    elif text[index + 1 :].strip():
        problems.add(where, "invalid JSON: text after the list")


def _text_lines(handle: IO[bytes], problems: Problems) -> Iterator[str]:
    """Each line as text for `csv`; a line that is not UTF-8 is reported and left blank."""
    for number, raw in enumerate(handle, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.add(number, _utf8_problem(raw, exc))
            text = "\n"
        yield text.removeprefix("\ufeff") if number == 1 else text


def _csv_rows(handle: IO[bytes], problems: Problems) -> Iterator[Row]:
    reader = csv.reader(_text_lines(handle, problems))
    # pandas (which `datasets` reads CSV with) has no limit on a field; csv's default is 128 KB.
    limit = csv.field_size_limit(_FIELD_LIMIT)
    try:
        header = next(reader, None)
        if header is None:
            return
        twice = sorted({name for name in header if header.count(name) > 1})
        if twice:
            problems.add(1, f"column(s) {', '.join(twice)} appear more than once in the header")
        start = reader.line_num + 1
        for values in reader:
            line, start = start, reader.line_num + 1
            if not values:
                continue
            if len(values) > len(header):
                problems.add(line, f"{len(values)} values for {len(header)} header columns")
                continue
            # A short record's missing values are nulls, as pandas (and `datasets`) read them.
            yield line, dict(zip_longest(header, values))
    except csv.Error as exc:
        problems.add(reader.line_num, f"not valid CSV: {exc}")
    finally:
        csv.field_size_limit(limit)


def read_rows(path: Path, kind: str, problems: Problems) -> Generator[Row, None, None]:
    """(line, row) for each row of a json/jsonl or csv file; unreadable lines go to `problems`."""
    with path.open("rb") as handle:
        if kind == "csv":
            yield from _csv_rows(handle, problems)
            return
        start = handle.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
        handle.seek(0)
        if start.startswith(b"["):
            yield from _json_list_rows(handle.read(), problems)
        else:
            yield from _jsonl_rows(handle, problems)
