"""A parquet file's top-level columns and row count, read from its footer without pyarrow.

The footer is a Thrift `FileMetaData` struct in the compact protocol: field 2 holds the schema (a
depth-first list of `SchemaElement`s whose first is the root), field 3 the number of rows. Reading
stops there, before the row groups, so even a file of many row groups costs a few kilobytes.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from aligntune.core.errors import DataError

_MAGIC = b"PAR1"
_SCHEMA, _NUM_ROWS = 2, 3
"""FileMetaData's fields."""
_NAME, _NUM_CHILDREN = 4, 5
"""SchemaElement's fields."""


class _Compact:
    """Just enough of Thrift's compact protocol to walk a struct and keep its values."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        """The next byte."""
        self.pos += 1
        return self.data[self.pos - 1]

    def varint(self) -> int:
        """An unsigned LEB128 integer."""
        shift = result = 0
        while True:
            byte = self.byte()
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result
            shift += 7

    def zigzag(self) -> int:
        """A signed integer (i16, i32, i64)."""
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, kind: int) -> Any:
        """One value of compact type `kind`; doubles and UUIDs are skipped (None)."""
        if kind in (1, 2):  # a bool field carries its value in its type
            return kind == 1
        if kind == 3:
            return self.byte()
        if kind in (4, 5, 6):
            return self.zigzag()
        if kind in (7, 13):
            self.pos += 8 if kind == 7 else 16
            return None
        if kind == 8:
            size = self.varint()
            self.pos += size
            return self.data[self.pos - size : self.pos]
        if kind in (9, 10):
            header = self.byte()
            size = self.varint() if header >> 4 == 15 else header >> 4
            element = header & 0x0F
            return [
                self.byte() == 1 if element in (1, 2) else self.value(element) for _ in range(size)
            ]
        if kind == 11:
            size = self.varint()
            types = self.byte() if size else 0
            return [(self.value(types >> 4), self.value(types & 0x0F)) for _ in range(size)]
        if kind == 12:
            return self.struct()
        raise ValueError(f"unknown Thrift type {kind}")

    def struct(self, last_field: int | None = None) -> dict[int, Any]:
        """A struct's fields by id, stopping after `last_field` when given."""
        fields: dict[int, Any] = {}
        field = 0
        while header := self.byte():
            field = field + (header >> 4) if header >> 4 else self.zigzag()
            fields[field] = self.value(header & 0x0F)
            if last_field is not None and field >= last_field:
                break
        return fields


def _subtree_end(schema: list[dict[int, Any]], index: int) -> int:
    """The index just past the schema element at `index` and its descendants."""
    end = index + 1
    for _ in range(schema[index].get(_NUM_CHILDREN, 0)):
        end = _subtree_end(schema, end)
    return end


def parquet_columns(path: Path) -> tuple[list[str], int]:
    """(top-level column names, number of rows) of a parquet file; a DataError if it is not one."""
    with path.open("rb") as handle:
        head = handle.read(4)
        size = handle.seek(0, 2)
        handle.seek(max(0, size - 8))
        tail = handle.read(8)
        if head != _MAGIC or size < 12 or tail[4:] != _MAGIC:
            raise DataError(f"{path}: not a parquet file (no PAR1 header and footer)")
        length = struct.unpack("<I", tail[:4])[0]
        if length > size - 12:
            raise DataError(f"{path}: broken parquet file (footer longer than the file)")
        handle.seek(size - 8 - length)
        footer = handle.read(length)
    try:
        meta = _Compact(footer).struct(last_field=_NUM_ROWS)
        schema = meta[_SCHEMA]
        names, index = [], 1
        for _ in range(schema[0].get(_NUM_CHILDREN, 0)):
            names.append(schema[index][_NAME].decode("utf-8"))
            index = _subtree_end(schema, index)
        return names, meta[_NUM_ROWS]
    except (IndexError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: broken parquet footer ({type(exc).__name__}: {exc})") from None
