"""YAML from strangers, read strictly: plain data only, and every refusal names the line.

Inputs: YAML text (str or bytes) of one document. Outputs: its tree (dict, list, str, int, float, bool, None;
datetime for an unquoted timestamp; bytes, set or tuples for the safe `!!binary`, `!!set`, `!!omap` tags,
which callers refuse as they see fit), or `YamlRefused`, a ValueError with a one-line reason such as
`line 12, column 1: duplicate key 'agent', first given at line 3`.
Rules (on top of `yaml.SafeLoader`'s constructor, which never builds Python objects):
- a key given twice in one mapping is refused: YAML says "last one wins", so a reader that checks the
  first value and a reader that uses the last one would disagree about the same bytes;
- aliases and merge keys (`<<`) are refused where they appear, before anything is expanded;
- nesting deeper than `max_depth` is refused while composing, before Python's recursion limit is reached;
- integers are at most 40 characters and inside the 64-bit range (Python refuses to read 4,300 digits,
  and YAML 1.1's base-60 `1:2:3:...` grows without bound); timestamps must be real dates (no year 0).
The text is scanned, parsed and composed by libyaml (`yaml.CParser`, ten times faster) when PyYAML was built
with it: an alias there is the node its anchor named, shared, never copied, so nothing grows before a walk
over the nodes checks that no node is reached twice and none lies too deep. A text that fails there (or
that libyaml refuses) is read again one event at a time, composed here, as PyYAML's pure-Python reader
always does: every check above then runs before a refused node is built, and its message names where.
Syntax errors are worded by the parser that found them.
`dump` writes plain data (dict, list, str, int, float, bool, None) as block YAML, keys in their order: the
text `yaml.dump(data, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True, width=100)` gives,
from events made here (PyYAML's serializer asks its Python resolver twice per scalar how the text would
read back, which was most of the time a large manifest took to write), emitted by libyaml when present.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import TYPE_CHECKING, Any

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.representer import SafeRepresenter
from yaml.resolver import Resolver
from yaml.scanner import Scanner

__all__ = ["MAX_INT_CHARS", "YamlRefused", "dump", "load", "parser"]

MAX_INT_CHARS = 40
_INT_RANGE = range(-(2**63), 2**64)  # signed and unsigned 64-bit values both fit
_MERGE_TAG = "tag:yaml.org,2002:merge"
_LIBYAML_TOO_DEEP = "exceeded maximum nesting depth"
# What reading a text may raise for the text itself (in libyaml's path, a cue to read it again event by event).
_REFUSED = (yaml.YAMLError, ValueError, OverflowError, RecursionError)


class YamlRefused(ValueError):
    """Why a YAML text was refused, on one line, with its line and column when known."""


class _Strict(Composer, SafeConstructor):
    """The checks, on PyYAML's composer and safe constructor; the parser below them comes from a subclass."""

    max_depth = 64
    _depth = 0

    if TYPE_CHECKING:  # given by the parser half of the subclasses

        def check_event(self, *choices: Any) -> bool: ...
        def peek_event(self) -> Any: ...

    def compose_node(self, parent: Node | None, index: object) -> Node | None:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            raise ComposerError(None, None, "YAML aliases are not allowed", event.start_mark)
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                mark = self.peek_event().start_mark
                raise ComposerError(None, None, f"nested deeper than {self.max_depth} levels", mark)
            node: Node | None = super().compose_node(parent, index)  # type: ignore[arg-type]
            return node
        finally:
            self._depth -= 1

    def flatten_mapping(self, node: MappingNode) -> None:
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                raise ConstructorError(None, None, "merge keys (<<) are not allowed", key_node.start_mark)
        super().flatten_mapping(node)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            self.flatten_mapping(node)
            first: dict[Any, Node] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                try:
                    earlier = first.setdefault(key, key_node)
                except TypeError:
                    continue  # unhashable: the base class refuses it with its own message
                if earlier is not key_node:
                    shown = repr(key) if len(repr(key)) <= 80 else repr(key)[:77] + "..."
                    raise ConstructorError(
                        None,
                        None,
                        f"duplicate key {shown}, first given at line {earlier.start_mark.line + 1}",
                        key_node.start_mark,
                    )
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping

    def construct_strict_int(self, node: ScalarNode) -> int:
        text = str(self.construct_scalar(node))
        if len(text) > MAX_INT_CHARS:
            raise ConstructorError(
                None, None, f"an integer of {len(text)} characters is too long", node.start_mark
            )
        value: int = self.construct_yaml_int(node)
        if value not in _INT_RANGE:
            raise ConstructorError(None, None, f"integer {text} is outside the 64-bit range", node.start_mark)
        return value

    def construct_strict_timestamp(self, node: ScalarNode) -> Any:
        try:
            return self.construct_yaml_timestamp(node)
        except (ValueError, OverflowError) as e:
            text = str(self.construct_scalar(node))[:60]
            raise ConstructorError(
                None, None, f"{text!r} is not a valid timestamp ({e})", node.start_mark
            ) from e


_Strict.add_constructor("tag:yaml.org,2002:int", _Strict.construct_strict_int)  # type: ignore[type-var]
_Strict.add_constructor(  # type: ignore[type-var]
    "tag:yaml.org,2002:timestamp", _Strict.construct_strict_timestamp
)


class _PureLoader(_Strict, Reader, Scanner, Parser, Resolver):
    def __init__(self, stream: str | bytes) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)


_CParser: type[Any] | None
try:
    from yaml._yaml import CParser as _CParser
except ImportError:  # PyYAML built without libyaml
    _CParser = None
_StrictLoader: type[_Strict] = _PureLoader
if _CParser is not None:  # libyaml composes (`load`); a refused text is composed here from its events

    class _CLoader(_Strict, _CParser, Resolver):  # type: ignore[misc, valid-type]
        def __init__(self, stream: str | bytes) -> None:
            _CParser.__init__(self, stream)  # type: ignore[misc]
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

    _StrictLoader = _CLoader


def parser() -> str:
    """Which parser reads the text: `libyaml` or `pure` (PyYAML built without libyaml)."""
    return "pure" if _StrictLoader is _PureLoader else "libyaml"


def load(text: str | bytes, *, max_depth: int = 64) -> Any:
    """The tree of one YAML document; YamlRefused (one line, with the line number) for anything refused."""
    if _CParser is not None and issubclass(_StrictLoader, _CParser):
        loader: _Strict | None = None
        try:
            loader = _StrictLoader(text)  # type: ignore[call-arg]
            node = _CParser.get_single_node(loader)  # composed by libyaml
            if node is None:
                return None
            if _tree(node, max_depth):
                return loader.construct_document(node)
        except _REFUSED:
            pass  # refused: read again below, event by event, for the message naming its line
        finally:
            if loader is not None:
                loader.dispose()  # type: ignore[attr-defined]
    return _load_by_events(text, max_depth)


def _tree(node: Node, max_depth: int) -> bool:
    """Whether the nodes reached from `node` form a tree (no node reached twice: no alias) of at most
    `max_depth` levels, the top one counting as one. Walked a level at a time, each checked whole."""
    seen: set[int] = set()
    level = [node]
    for _ in range(max_depth):
        ids = set(map(id, level))
        if len(ids) != len(level) or not seen.isdisjoint(ids):
            return False
        seen |= ids
        pairs = chain.from_iterable(n.value for n in level if isinstance(n, MappingNode))
        items = chain.from_iterable(n.value for n in level if isinstance(n, SequenceNode))
        level = [*chain.from_iterable(pairs), *items]
        if not level:
            return True
    return False


def _load_by_events(text: str | bytes, max_depth: int) -> Any:
    loader: _Strict | None = None
    try:
        loader = _StrictLoader(text)  # type: ignore[call-arg]  # the reader checks the characters here
        loader.max_depth = max_depth
        return loader.get_single_data()
    except yaml.MarkedYAMLError as e:
        reason = e.problem or e.context or type(e).__name__
        if reason == _LIBYAML_TOO_DEEP:  # libyaml's own cap (1,000 levels) can come first: same refusal
            reason = f"nested deeper than {max_depth} levels"
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise YamlRefused(f"{where}{reason}".replace("\n", " ")) from e
    except _REFUSED as e:
        lines = str(e).strip().splitlines()
        raise YamlRefused(lines[0] if lines else type(e).__name__) from e
    finally:
        if loader is not None:
            loader.dispose()  # type: ignore[attr-defined]


def dump(data: Any) -> str:
    """Block YAML for plain data, keys in their order (see the module docstring)."""
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text: str = yaml.emit(_events(data), Dumper=dumper, allow_unicode=True, width=100)
    return text


_IMPLICIT = Resolver.yaml_implicit_resolvers  # first character -> [(tag, pattern)], as the resolver reads
_FLOAT = SafeRepresenter()
_DONE = object()


def _plain(value: str) -> bool:
    """Whether `value` written plain reads back as a string (else it is quoted)."""
    return not any(pattern.match(value) for _, pattern in _IMPLICIT.get(value[:1], ()))


def _events(data: Any) -> Iterator[Event]:
    yield StreamStartEvent()
    yield DocumentStartEvent(explicit=False)
    stack: list[Iterator[Any]] = [iter((data,))]
    ends: list[Event] = []
    while stack:
        value: Any = next(stack[-1], _DONE)
        if value is _DONE:  # this collection is done
            stack.pop()
            if ends:
                yield ends.pop()
            continue
        kind = type(value)
        if kind is str:
            yield ScalarEvent(None, None, (_plain(value), True), value)
        elif kind is dict:
            yield MappingStartEvent(None, None, True, flow_style=False)
            stack.append(x for pair in value.items() for x in pair)
            ends.append(MappingEndEvent())
        elif kind is list or kind is tuple:
            yield SequenceStartEvent(None, None, True, flow_style=False)
            stack.append(iter(value))
            ends.append(SequenceEndEvent())
        elif kind is bool:
            yield ScalarEvent(None, "tag:yaml.org,2002:bool", (True, False), "true" if value else "false")
        elif kind is int:
            yield ScalarEvent(None, "tag:yaml.org,2002:int", (True, False), str(value))
        elif kind is float:
            yield ScalarEvent(
                None, "tag:yaml.org,2002:float", (True, False), _FLOAT.represent_float(value).value
            )
        elif value is None:
            yield ScalarEvent(None, "tag:yaml.org,2002:null", (True, False), "null")
        else:
            raise TypeError(f"cannot write {kind.__name__} values as YAML")
    yield DocumentEndEvent(explicit=False)
    yield StreamEndEvent()
