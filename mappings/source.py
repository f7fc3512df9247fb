"""Read a sales-ops YAML mapping file and point every problem at its file, line and column.

Sales ops edit these files by hand, so a bare "validation failed" is useless to them: each problem
names where it is and what was expected. YAML is parsed with a strict ``SafeLoader`` (duplicate keys,
non-text keys, merge keys, control characters in text and tags beyond plain YAML are errors, not silent
surprises), and a :class:`Locator` maps pydantic error locations back to the node marks PyYAML recorded.

The file comes from people and from the API, so loading is bounded (``mappings.limits``): its size is checked
before parsing, and the composer counts nesting depth and nodes as it goes, an alias counting as every node it
stands for, so a "billion laughs" file or one nested thousands deep is refused at the line that crosses the
limit, before anything is expanded.

This module stays pure (stdlib, yaml, pydantic only) so the CLI, the service and tests can all use it.
"""

from __future__ import annotations

import datetime
import pathlib
from dataclasses import dataclass
from typing import Any

import pydantic
import yaml
from yaml.events import AliasEvent, MappingStartEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mappings.limits import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, NOT_PRINTABLE

Path = tuple[str | int, ...]
Position = tuple[int | None, int | None]

_EXPECTED_TOP = "a mapping with version, team, cycle, objectives"
_TAG = "tag:yaml.org,2002:"
_SCALAR_KINDS = {"bool": "a boolean", "int": "a number", "float": "a number", "null": "empty", "timestamp": "a date"}
_INPUT_LIMIT = 60
# Pydantic reports these by naming a key or tag; echoing the input (a whole mapping) would only be noise.
_NO_INPUT = {"missing", "extra_forbidden", "union_tag_invalid", "union_tag_not_found"}
# SafeLoader builds these, but !!binary would smuggle any bytes into text and !!set/!!omap/!!pairs build what no
# schema field expects; any other tag has no constructor and is refused when constructing
_REFUSED_TAGS = {f"{_TAG}{name}" for name in ("binary", "set", "omap", "pairs")}
# no schema number needs more (they lie within ±10^15); int() of a long literal is slow, and refused past 4,300 digits
_MAX_NUMBER_CHARS = 100
_TOO_DEEP = f"lists and mappings nested more than {MAX_DEPTH} levels deep, the limit for a mapping file"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a mapping file, at a 1-based line and column when known."""

    file: str
    line: int | None
    column: int | None
    message: str

    def __str__(self) -> str:
        where = "".join(f":{part}" for part in (self.line, self.column) if part is not None)
        return f"{self.file}{where}: {self.message}"


class MappingFileError(Exception):
    """Raised with every problem found; str() joins them one per line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


class Locator:
    """Maps a path of keys and list indexes (a pydantic error ``loc``) to a 1-based line and column."""

    def __init__(self) -> None:
        # path -> (position of the key as typed, position of the value); the key is None for the root and list items
        self._marks: dict[Path, tuple[Position | None, Position]] = {}

    def _record(self, path: Path, key: yaml.Mark | None, value: yaml.Mark) -> None:
        self._marks[path] = (_position(key) if key else None, _position(value))

    def resolve(self, loc: tuple[str | int, ...]) -> Path:
        """Return the longest prefix of ``loc`` that exists in the data, skipping pydantic's own loc elements.

        Pydantic inserts discriminated-union tags ('count') and validator names ('function-after[...]') that
        are not keys in the file; skipping unknown strings keeps descending to the key the user actually wrote.
        """
        path: Path = ()
        for element in loc:
            if path + (element,) in self._marks:
                path += (element,)
        return path

    def locate(self, loc: tuple[str | int, ...]) -> Position:
        """Return (line, column) of the deepest part of ``loc`` found; a missing key gives its parent's position."""
        entry = self._marks.get(self.resolve(loc))
        if entry is None:
            return None, None
        key, value = entry
        return key or value


def _position(mark: yaml.Mark) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that composes within the limits and reports a bad date or number as a located YAML problem.

    While composing it keeps a running count of the nodes the document stands for (an alias adds the whole
    size of its anchor) and of how deep lists and mappings nest (through aliases too), and stops at the node
    or alias that crosses ``MAX_NODES`` or ``MAX_DEPTH``. Only anchored nodes keep their size, so the count
    costs one dictionary entry per anchor.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._expanded = 0  # nodes composed so far, every alias counted as all the nodes it repeats
        self._depth = 0  # lists and mappings open around the node being composed
        self._deepest = 0  # the deepest level reached inside the node being composed
        self._anchored: dict[int, tuple[int, int]] = {}  # id of an anchored node -> (expanded size, height)

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:  # noqa: N803 (PyYAML's name)
        # the scanner reads ahead through "[[[[…" looking for simple keys, quadratically: stop it at the limit
        super().fetch_flow_collection_start(TokenClass)
        if self.flow_level > MAX_DEPTH:
            raise yaml.scanner.ScannerError(None, None, _TOO_DEEP, self.tokens[-1].start_mark)

    def add_indent(self, column: int) -> bool:
        added: bool = super().add_indent(column)
        if len(self.indents) > MAX_DEPTH:
            raise yaml.scanner.ScannerError(None, None, _TOO_DEEP, self.get_mark())
        return added

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)  # an undefined alias is left to PyYAML's own error
            if target is not None:
                if id(target) not in self._anchored:
                    raise yaml.composer.ComposerError(
                        None,
                        None,
                        f"alias *{event.anchor} refers to a list or mapping that contains it",
                        event.start_mark,
                    )
                self._grow(*self._anchored[id(target)], event.start_mark, alias=event.anchor)
            return super().compose_node(parent, index)
        event = self.peek_event()
        before, outer_deepest = self._expanded, self._deepest
        self._deepest = self._depth
        collection = isinstance(event, SequenceStartEvent | MappingStartEvent)
        if collection:
            self._depth += 1
        try:
            self._grow(1, 0, event.start_mark)
            node = super().compose_node(parent, index)
        finally:
            if collection:
                self._depth -= 1
        if event.anchor is not None:
            self._anchored[id(node)] = (self._expanded - before, self._deepest - self._depth)
        self._deepest = max(outer_deepest, self._deepest)
        return node

    def _grow(self, nodes: int, height: int, mark: yaml.Mark, *, alias: str | None = None) -> None:
        self._expanded += nodes
        reach = self._depth + height
        self._deepest = max(self._deepest, reach)
        if reach > MAX_DEPTH:
            message = f"alias *{alias} puts {_TOO_DEEP}" if alias else _TOO_DEEP
            raise yaml.composer.ComposerError(None, None, message, mark)
        if self._expanded > MAX_NODES:
            what = f"with alias *{alias} the file stands for" if alias else "the file has"
            raise yaml.composer.ComposerError(
                None,
                None,
                f"{what} more than {MAX_NODES:,} values, lists and mappings, the limit for a mapping file"
                + (": repeat less through aliases" if alias else ""),
                mark,
            )

    def construct_yaml_timestamp(self, node: ScalarNode) -> datetime.date | datetime.datetime:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as exc:
            message = f'invalid date "{node.value}": {exc}'
            raise yaml.constructor.ConstructorError(None, None, message, node.start_mark) from exc

    def construct_yaml_int(self, node: ScalarNode) -> int:
        self._short_number(node)
        return super().construct_yaml_int(node)

    def construct_yaml_float(self, node: ScalarNode) -> float:
        self._short_number(node)
        return super().construct_yaml_float(node)

    @staticmethod
    def _short_number(node: ScalarNode) -> None:
        if len(node.value) > _MAX_NUMBER_CHARS:
            message = f"a number of {len(node.value)} characters is out of range: numbers lie between -10^15 and 10^15"
            raise yaml.constructor.ConstructorError(None, None, message, node.start_mark)


_StrictLoader.add_constructor(f"{_TAG}timestamp", _StrictLoader.construct_yaml_timestamp)
_StrictLoader.add_constructor(f"{_TAG}int", _StrictLoader.construct_yaml_int)
_StrictLoader.add_constructor(f"{_TAG}float", _StrictLoader.construct_yaml_float)


def _describe(node: Node) -> str:
    if isinstance(node, SequenceNode):
        return "a list"
    if isinstance(node, MappingNode):
        return "a mapping"
    kind = _SCALAR_KINDS.get(node.tag.removeprefix(_TAG), "text")
    return f'{kind} ("{node.value}")'


def _check(node: Node, path: Path, locator: Locator, problems: list[Problem], seen: set[int], filename: str) -> None:
    """Record marks under ``path`` and collect key problems, visiting each node once.

    Aliases share nodes, so visiting once keeps recursive anchors finite and "billion laughs" files cheap;
    an error inside a repeated alias is then located at the alias itself, which is where the user looks.
    """
    if id(node) in seen:
        return
    seen.add(id(node))

    def problem(mark: yaml.Mark, message: str) -> None:
        problems.append(Problem(filename, *_position(mark), message))

    if node.tag in _REFUSED_TAGS:
        problem(node.start_mark, f"!!{node.tag.removeprefix(_TAG)} is not supported: write plain text, numbers, lists")
    if isinstance(node, ScalarNode) and (unprintable := _unprintable(node)):
        problem(node.start_mark, unprintable)
    if isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            locator._record(path + (index,), None, item.start_mark)
            _check(item, path + (index,), locator, problems, seen, filename)
    elif isinstance(node, MappingNode):
        first_lines: dict[str, int] = {}
        for key, value in node.value:
            if key.tag == f"{_TAG}merge":
                problem(key.start_mark, 'merge keys ("<<") are not supported: write the keys out explicitly')
            elif not isinstance(key, ScalarNode) or key.tag != f"{_TAG}str":
                hint = f'; quote it ("{key.value}") if it is meant as text' if isinstance(key, ScalarNode) else ""
                problem(key.start_mark, f"keys must be text, found {_describe(key)}{hint}")
            elif unprintable := _unprintable(key):
                problem(key.start_mark, unprintable)
            elif key.value in first_lines:
                problem(key.start_mark, f'duplicate key "{key.value}" (first defined on line {first_lines[key.value]})')
            else:
                first_lines[key.value] = key.start_mark.line + 1
                locator._record(path + (key.value,), key.start_mark, value.start_mark)
                _check(value, path + (key.value,), locator, problems, seen, filename)


def _unprintable(node: ScalarNode) -> str | None:
    # an escape in quotes ("\0", "\x07", "\ud800") may not add what the YAML reader refuses when typed
    found = NOT_PRINTABLE.search(node.value)
    if found is None:
        return None
    return f"text may not contain control characters: U+{ord(found.group()):04X} (an escape in quotes); remove it"


def _reader_problem(exc: yaml.reader.ReaderError, text: str, filename: str) -> Problem:
    # the reader reports a character offset, not a mark; turn it into a line and column ourselves
    line = text.count("\n", 0, exc.position) + 1
    column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
    return Problem(filename, line, column, f"{exc.reason} (character #x{exc.character:04x})")


def _too_large(raw: bytes, filename: str) -> Problem:
    # point at where the limit is crossed: the line and column of the first byte beyond it
    before = raw[:MAX_FILE_BYTES].decode("utf-8", errors="ignore")
    line = before.count("\n") + 1
    column = len(before) - (before.rfind("\n") + 1) + 1
    message = f"the file is larger than {MAX_FILE_BYTES:,} bytes (1 MiB), the limit for a mapping file"
    return Problem(filename, line, column, message)


def load_yaml(text: str, *, filename: str) -> tuple[Any, Locator]:
    """Parse ``text`` strictly; return the data and a Locator, or raise MappingFileError listing every problem."""
    head = text[: MAX_FILE_BYTES + 1].encode("utf-8", errors="surrogatepass")  # enough to tell and to locate
    if len(head) > MAX_FILE_BYTES:
        raise MappingFileError([_too_large(head, filename)])
    try:
        # the reader checks every character up front, so even constructing the loader can fail
        loader = _StrictLoader(text)
    except yaml.reader.ReaderError as exc:
        raise MappingFileError([_reader_problem(exc, text, filename)]) from exc
    try:
        node = loader.get_single_node()
        if node is None or node.tag == f"{_TAG}null":
            raise MappingFileError([Problem(filename, 1, 1, f"the file is empty: expected {_EXPECTED_TOP}")])
        if not isinstance(node, MappingNode):
            found = _describe(node)
            raise MappingFileError(
                [Problem(filename, *_position(node.start_mark), f"expected {_EXPECTED_TOP}, found {found}")]
            )
        locator = Locator()
        locator._record((), None, node.start_mark)
        problems: list[Problem] = []
        _check(node, (), locator, problems, set(), filename)
        if problems:
            raise MappingFileError(problems)
        return loader.construct_document(node), locator
    except yaml.MarkedYAMLError as exc:
        message = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context and exc.problem.startswith("but "):
            # PyYAML splits some sentences in two ("expected a single document", "but found another")
            message = f"{exc.context}, {exc.problem}"
        elif exc.problem and exc.context and exc.context_mark:
            message += f" ({exc.context} on line {exc.context_mark.line + 1})"
        mark = exc.problem_mark or exc.context_mark
        line, column = _position(mark) if mark else (None, None)
        raise MappingFileError([Problem(filename, line, column, message)]) from exc
    finally:
        loader.dispose()


def _dotted(path: Path) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".")


def _shown(value: Any) -> str:
    if value is None:
        return "an empty value"
    text = f'"{value}"' if isinstance(value, str) else repr(value)
    return text if len(text) <= _INPUT_LIMIT else text[: _INPUT_LIMIT - 1] + "…"


def problems_from_validation(exc: pydantic.ValidationError, locator: Locator, *, filename: str) -> list[Problem]:
    """Turn each pydantic error into a Problem at the line and column the user typed, sorted by line."""
    problems = []
    for error in exc.errors(include_url=False):
        loc, kind = tuple(error["loc"]), error["type"]
        path = locator.resolve(loc)
        position = locator.locate(loc)
        if kind == "missing":
            name = loc[-1] if loc else "?"
            message = f'missing required key "{name}"' if isinstance(name, str) else f"missing item [{name}]"
        elif kind == "extra_forbidden":
            # the unknown key exists in the file: locate it, but name it in the message rather than the path
            message = f'unknown key "{loc[-1]}"'
            path = path[:-1] if path and path[-1] == loc[-1] else path
        else:
            message = error["msg"]
            if kind == "union_tag_invalid":
                # point at the "type: ..." line itself rather than at the start of the list item
                discriminator = str(error.get("ctx", {}).get("discriminator", "")).strip("'")
                position = locator.locate(path + (discriminator,))
        if kind not in _NO_INPUT:
            message += f" (got {_shown(error.get('input'))})"
        prefix = f"{_dotted(path)}: " if path else ""
        problems.append(Problem(filename, *position, prefix + message))
    return sorted(problems, key=lambda problem: (problem.line or 0, problem.column or 0))


def load_file(path: pathlib.Path) -> tuple[Any, Locator]:
    """Read ``path`` as UTF-8 and load it; a missing, unreadable or non-UTF-8 file raises MappingFileError."""
    filename = str(path)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)  # a larger file is refused without reading it all
    except FileNotFoundError as exc:
        raise MappingFileError([Problem(filename, None, None, f"no such file: {filename}")]) from exc
    except OSError as exc:
        raise MappingFileError([Problem(filename, None, None, f"cannot read {filename}: {exc.strerror}")]) from exc
    if len(raw) > MAX_FILE_BYTES:
        raise MappingFileError([_too_large(raw, filename)])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        message = f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x}); save it as UTF-8"
        raise MappingFileError([Problem(filename, line, None, message)]) from exc
    return load_yaml(text, filename=filename)
