"""A recipe file's YAML, read safely: bounded size, nesting and alias expansion, no duplicate keys,
and every refusal located at its line.

A recipe is a few hundred values a few levels deep; these limits are far above that and far below
what could exhaust the machine, so a hostile or corrupted file is refused in milliseconds.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, cast

import yaml

from aligntune.core.errors import RecipeError

MAX_RECIPE_BYTES = 1 << 20
"""The largest recipe file read (1 MiB)."""
MAX_DEPTH = 20
"""The deepest nesting of mappings and lists."""
MAX_VALUES = 10_000
"""The most values a document may hold, counting each value an alias repeats."""
MAX_KEY_CHARS = 256
"""The longest mapping key (keys are field and parameter names)."""

_KINDS = {"int": "an integer", "float": "a number", "timestamp": "a date", "binary": "base64"}
"""A YAML tag's last part, in words."""
_FEW = "a recipe holds a few hundred"


def _refuse(mark: Any, problem: str) -> yaml.MarkedYAMLError:
    """A located refusal (`mark`: where in the text; the stubs type PyYAML's C marks apart)."""
    return yaml.MarkedYAMLError(problem=problem, problem_mark=mark)


def short_text(text: str, limit: int = 40) -> str:
    """`text` for a message: quoted, cut to `limit` characters with its length when longer."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


class RecipeLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, refusing what no recipe needs and what could exhaust the machine."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        # id(node) -> (values in it, aliases expanded; its height): known once it is composed.
        self._extent: dict[int, tuple[int, int]] = {}
        self._open = 0  # collections being composed around the current node
        self._composed = 0  # values written out so far: refused early, before reading on

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node:
        """Compose one node, refusing recursive aliases, deep nesting, too many values, long or
        duplicate keys."""
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = self._compose(parent, index)
            if id(node) not in self._extent:
                raise _refuse(event.start_mark, f"alias *{event.anchor} is inside what it names")
            return node
        self._open += 1
        self._composed += 1
        if self._composed > MAX_VALUES:
            raise _refuse(event.start_mark, f"more than {MAX_VALUES} values; {_FEW}")
        if self._open > MAX_DEPTH:
            # Refused before composing deeper: composition recurses once per level.
            raise _refuse(event.start_mark, f"nested more than {MAX_DEPTH} levels deep")
        node = self._compose(parent, index)
        self._open -= 1
        if isinstance(node, yaml.MappingNode):
            _check_keys(node)
        children = [self._extent[id(child)] for child in _children(node)]
        values = 1 + sum(count for count, _ in children)
        height = 1 + max((depth for _, depth in children), default=0)
        if values > MAX_VALUES:
            raise _refuse(
                event.start_mark,
                f"aliases repeat this value to more than {MAX_VALUES} values; {_FEW}",
            )
        if height > MAX_DEPTH:
            raise _refuse(event.start_mark, f"aliases nest this value more than {MAX_DEPTH} deep")
        self._extent[id(node)] = (values, height)
        return node

    def _compose(self, parent: yaml.Node | None, index: int) -> yaml.Node:
        # The stub allows None, which PyYAML returns only at the end of the stream.
        return cast(yaml.Node, super().compose_node(parent, index))

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """Construct one value; a scalar Python cannot read (a 13th month) is a located error."""
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            kind = node.tag.rsplit(":", 1)[-1]
            reason = str(exc).split(";")[0]
            raise _refuse(
                node.start_mark,
                f"cannot read {short_text(str(node.value))} as {_KINDS.get(kind, kind)}: {reason}",
            ) from None


def _check_keys(node: yaml.MappingNode) -> None:
    """Keys are short and unique (YAML would silently keep the last of two)."""
    seen: dict[tuple[str, str], yaml.Node] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode):
            continue
        if len(key.value) > MAX_KEY_CHARS:
            raise _refuse(
                key.start_mark,
                f"a key of {len(key.value)} characters; keys are names, "
                f"at most {MAX_KEY_CHARS} characters",
            )
        first = seen.setdefault((key.tag, key.value), key)
        if first is not key:
            raise _refuse(
                key.start_mark,
                f"duplicate key {short_text(key.value)}, first on line "
                f"{first.start_mark.line + 1}; YAML would silently keep only this one",
            )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _nearby_recipes(missing: Path) -> str:
    """What a mistyped recipe path may have meant: the closest name in its folder, else the
    recipes that folder has."""
    folder = missing.parent
    try:
        names = sorted(
            p.name for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()
        )
    except OSError:
        return f"the folder {folder} does not exist or cannot be read"
    stems = {Path(name).stem: name for name in names}
    close = difflib.get_close_matches(missing.stem, list(stems), n=1)
    if close:
        return f"did you mean {folder / stems[close[0]]}?"
    if names:
        return f"{folder} has: {', '.join(names[:10])}{', ...' if len(names) > 10 else ''}"
    return f"{folder} has no recipe (.yaml) files"


def read_text(path: str | Path) -> str:
    """The recipe file's text: an existing file, at most MAX_RECIPE_BYTES, in UTF-8."""
    file = Path(path)
    try:
        if file.is_dir():
            raise RecipeError(str(path), ["is a folder, not a recipe file"])
        if file.is_symlink() and not file.exists():
            raise RecipeError(
                str(path), ["is a symbolic link to nothing (a missing file, or a loop of links)"]
            )
        if not file.is_file():
            raise RecipeError(str(path), ["recipe file not found"], hint=_nearby_recipes(file))
        with file.open("rb") as handle:
            raw = handle.read(MAX_RECIPE_BYTES + 1)
        if len(raw) > MAX_RECIPE_BYTES:
            size = max(file.stat().st_size, len(raw))
            raise RecipeError(
                str(path), [f"the file is {size} bytes; a recipe is at most {MAX_RECIPE_BYTES}"]
            )
    except OSError as exc:
        raise RecipeError(
            short_text(str(path), 80), [f"cannot read recipe: {exc.strerror}"]
        ) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise RecipeError(
            f"{path}:{line}",
            [f"cannot read recipe: not UTF-8 text (byte 0x{raw[exc.start]:02x} cannot be decoded)"],
            hint="save the recipe as UTF-8 (iconv -f UTF-16 -t UTF-8, or your editor's encoding)",
        ) from None


def parse(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """The document's data and its node tree (for lines); a RecipeError at the offending line."""
    try:
        loader = RecipeLoader(text)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        code: int = exc.character  # a code point: the text is already decoded
        name = "a NUL byte" if code == 0 else f"control character U+{code:04X}"
        raise RecipeError(
            f"{source}:{line}", [f"{name} is not allowed in a recipe, which is plain text"]
        ) from None
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = ", ".join(part for part in (exc.context, exc.problem) if part)
        if isinstance(exc, yaml.scanner.ScannerError | yaml.parser.ParserError):
            problem = f"YAML syntax error: {problem}"
        raise RecipeError(where, [problem]) from None
    finally:
        loader.dispose()
    return data, node
