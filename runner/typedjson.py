"""Typed JSON: a tagged JSON encoding for the Python values that agent state and recorded I/O hold.

Input: a Python value (dicts, lists, tuples, sets, bytes, datetimes, decimals, UUIDs, paths, dataclasses,
enums, ...). Output: a JSON-ready value; `decode` turns it back into the same Python value.

Rules:
- A tag is a JSON object with exactly one key starting with "$" (``{"$tuple": [...]}``). A user dict that
  could be mistaken for a tag, or that has non-string keys, is written as ``{"$dict": [[k, v], ...]}``.
- Decoding never imports a module: dataclasses and enums resolve only from modules already imported, and
  their ``__init__`` is not called (fields are set directly, as pickle would).
- Pickle is used only when the caller passes ``allow_pickle=True``, for a value no tag covers, and such a
  payload is decoded only when the caller passes ``allow_pickle=True`` again. `pickle_globals` lists what a
  payload would import without running it, so a refusal can say what the file tried to do.
- ``lenient=True`` (for recorded span input/output) writes ``{"$repr": ...}`` instead of failing; it decodes
  to an `Unrepresentable`, which a replay refuses to serve.
- Files come from strangers: data nested deeper than `MAX_DEPTH` JSON levels is refused before decoding,
  and every decoding failure (overflowing numbers included) is a one-line DebugError naming the path.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import enum
import json
import math
import pathlib
import pickle
import pickletools
import sys
import uuid
from collections.abc import Callable
from typing import Any

from runner.errors import DebugError

__all__ = [
    "MAX_DEPTH",
    "Json",
    "PickleRefused",
    "Unrepresentable",
    "decode",
    "dumps",
    "encode",
    "find_pickles",
    "loads",
    "pickle_globals",
]

Json = None | bool | int | float | str | list["Json"] | dict[str, "Json"]

_PICKLE_PROTOCOL = 4  # readable by every Python the runner supports
_PLAIN = frozenset({str, int, bool, type(None)})  # JSON values that encode and decode as themselves
# JSON levels (a tag is two: its object and its list). Real agent state stays far below; the cap keeps
# decoding well inside Python's recursion limit, whatever the caller's own stack depth.
MAX_DEPTH = 200


@dataclasses.dataclass(frozen=True)
class Unrepresentable:
    """A value that was recorded only as its repr because no tag could hold it."""

    type_name: str
    text: str


def _type_ref(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _is_tag_like(d: dict[Any, Any]) -> bool:
    return len(d) == 1 and isinstance(next(iter(d)), str) and next(iter(d)).startswith("$")


def encode(value: object, *, allow_pickle: bool = False, lenient: bool = False, path: str = "state") -> Json:
    """Encode `value` to a JSON-ready value; raise DebugError naming the path of what cannot be encoded."""
    try:
        return _Encoder(allow_pickle, lenient).run(value, path)
    except RecursionError as e:
        raise DebugError(
            f"{path} is nested too deeply to encode; make get_state() return flatter data"
        ) from e


class _Encoder:
    def __init__(self, allow_pickle: bool, lenient: bool) -> None:
        self.allow_pickle = allow_pickle
        self.lenient = lenient
        self.active: set[int] = set()

    def run(self, v: object, path: str) -> Json:
        if v is None or type(v) in (bool, int, str):
            return v  # type: ignore[return-value]
        if type(v) is float:
            return v if math.isfinite(v) else {"$float": repr(v)}
        if isinstance(v, enum.Enum):
            return {
                "$enum": {"type": self._ref(type(v), v, path), "value": self.run(v.value, f"{path}.value")}
            }
        if id(v) in self.active:
            raise DebugError(f"{path} refers back to itself (a cycle); make get_state() return plain data")
        self.active.add(id(v))
        try:
            return self._container(v, path)
        finally:
            self.active.discard(id(v))

    def _container(self, v: object, path: str) -> Json:
        if type(v) is list:
            return [x if type(x) in _PLAIN else self.run(x, f"{path}[{i}]") for i, x in enumerate(v)]
        if type(v) is tuple:
            return {
                "$tuple": [x if type(x) in _PLAIN else self.run(x, f"{path}[{i}]") for i, x in enumerate(v)]
            }
        if type(v) is dict:
            if all(type(k) is str for k in v) and not _is_tag_like(v):
                return {k: x if type(x) in _PLAIN else self.run(x, f"{path}[{k!r}]") for k, x in v.items()}
            return {
                "$dict": [[self.run(k, f"{path}.key"), self.run(x, f"{path}[{k!r}]")] for k, x in v.items()]
            }
        if type(v) in (set, frozenset):
            items = [self.run(x, f"{path}.item") for x in v]  # type: ignore[attr-defined]
            items.sort(key=lambda j: json.dumps(j, sort_keys=True))
            return {"$set" if type(v) is set else "$frozenset": items}
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            fields = {f.name: self.run(getattr(v, f.name), f"{path}.{f.name}") for f in dataclasses.fields(v)}
            return {"$dataclass": {"type": self._ref(type(v), v, path), "fields": fields}}
        return self._scalar(v, path)

    def _scalar(self, v: object, path: str) -> Json:
        if isinstance(v, bytes | bytearray):
            tag = "$bytes" if type(v) is bytes else "$bytearray"
            return {tag: base64.b64encode(v).decode("ascii")}
        if isinstance(v, dt.datetime):
            return {"$datetime": v.isoformat()}
        if isinstance(v, dt.date):
            return {"$date": v.isoformat()}
        if isinstance(v, dt.time):
            return {"$time": v.isoformat()}
        if isinstance(v, dt.timedelta):
            return {"$timedelta": [v.days, v.seconds, v.microseconds]}
        if isinstance(v, decimal.Decimal):
            return {"$decimal": str(v)}
        if isinstance(v, uuid.UUID):
            return {"$uuid": str(v)}
        if isinstance(v, pathlib.PurePath):
            return {"$path": str(v)}
        if isinstance(v, complex):
            return {"$complex": [repr(v.real), repr(v.imag)]}
        return self._fallback(v, path)

    def _ref(self, cls: type, v: object, path: str) -> str:
        if "<locals>" in cls.__qualname__:
            raise DebugError(
                f"{path} is a {cls.__qualname__}, defined inside a function, so it could not be found again "
                "when loading; define the class at module level"
            )
        return _type_ref(cls)

    def _fallback(self, v: object, path: str) -> Json:
        if self.lenient:
            return {"$repr": {"type": _type_ref(type(v)), "text": repr(v)[:2000]}}
        if self.allow_pickle:
            try:
                payload = pickle.dumps(v, protocol=_PICKLE_PROTOCOL)
            except Exception as e:  # pickle raises many types (TypeError, PicklingError, AttributeError)
                raise DebugError(f"{path} ({_type_ref(type(v))}) cannot be pickled either: {e}") from e
            return {"$pickle": base64.b64encode(payload).decode("ascii")}
        raise DebugError(
            f"{path} is a {_type_ref(type(v))}, which typed JSON cannot hold; return plain data from "
            "get_state(), or save with allow_pickle=True (and load with allow_pickle=True) if you trust it"
        )


def find_pickles(data: Json, path: str = "state") -> list[tuple[str, bytes]]:
    """Every pickle payload inside encoded data, with its path; decodes nothing."""
    found: list[tuple[str, bytes]] = []
    stack: list[tuple[str, Json]] = [(path, data)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, list):
            stack.extend((f"{where}[{i}]", x) for i, x in enumerate(node) if isinstance(x, list | dict))
        elif isinstance(node, dict):
            if set(node) == {"$pickle"}:
                raw = node["$pickle"]
                try:
                    found.append(
                        (where, base64.b64decode(raw if isinstance(raw, str) else "", validate=True))
                    )
                except ValueError:
                    found.append((where, b""))
            else:
                stack.extend((f"{where}.{k}", x) for k, x in node.items() if isinstance(x, list | dict))
    return found


def pickle_globals(payload: bytes) -> list[str]:
    """The module.name globals a pickle payload would import, read with pickletools (nothing runs)."""
    names: list[str] = []
    strings: list[str] = []
    try:
        for op, arg, _pos in pickletools.genops(payload):
            if op.name == "GLOBAL" and isinstance(arg, str):
                names.append(arg.replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                names.append(f"{strings[-2]}.{strings[-1]}")
            if isinstance(arg, str):
                strings.append(arg)
    except Exception:  # a malformed payload: report what was read so far
        names.append("<unreadable opcodes>")
    return names


class PickleRefused(DebugError):
    """A pickle payload met while decoding without `allow_pickle`."""


class _TooDeep(Exception):
    """Data nested deeper than MAX_DEPTH, met while decoding (`decode` names the path it was given)."""


def decode(data: Json, *, allow_pickle: bool = False, path: str = "state") -> Any:
    """Decode what `encode` wrote; raise DebugError for unknown tags, unresolvable classes, pickles
    (PickleRefused), data nested deeper than MAX_DEPTH and values out of range. The depth is checked as
    the data is decoded; with `allow_pickle`, all of it first, so no payload runs before a refusal."""
    if allow_pickle:
        _check_depth(data, path)
    try:
        return _decode(data, allow_pickle, path, 1)
    except _TooDeep:
        raise DebugError(_too_deep(path)) from None
    except RecursionError as e:  # only when the caller's stack is already nearly full
        raise DebugError(f"{path} is nested too deeply to decode") from e


def _too_deep(path: str) -> str:
    return f"{path} is nested more than {MAX_DEPTH} levels deep; refusing to decode it"


def _check_depth(data: Json, path: str) -> None:
    """Refuse data nested deeper than MAX_DEPTH, walking it without recursion."""
    stack: list[tuple[Json, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise DebugError(_too_deep(path))
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))


def _decode(d: Json, allow_pickle: bool, path: str, depth: int) -> Any:
    """`d` decoded; `depth` is its level, counted in JSON containers as `_check_depth` counts them."""
    if isinstance(d, list):
        if depth > MAX_DEPTH:
            raise _TooDeep
        return [
            x if type(x) in _PLAIN else _decode(x, allow_pickle, f"{path}[{i}]", depth + 1)
            for i, x in enumerate(d)
        ]
    if not isinstance(d, dict):
        return d
    if depth > MAX_DEPTH:
        raise _TooDeep
    if not _is_tag_like(d):
        return {
            k: x if type(x) in _PLAIN else _decode(x, allow_pickle, f"{path}[{k!r}]", depth + 1)
            for k, x in d.items()
        }
    tag, arg = next(iter(d.items()))
    try:
        return _decode_tag(tag, arg, allow_pickle, path, depth + 1)
    except DebugError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, ArithmeticError) as e:
        # ArithmeticError: OverflowError (a $timedelta of 1e300 days) and decimal's signals.
        raise DebugError(f"{path}: malformed {tag} value ({_first_line(e)})") from e


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    return line if len(line) <= 200 else line[:197] + "..."


def _items(arg: Json, allow_pickle: bool, path: str, depth: int) -> list[Any]:
    """The items of a tag's list `arg`, which sits at `depth`."""
    if not isinstance(arg, list):
        raise TypeError("expected a list")
    items: list[Any] = _decode(arg, allow_pickle, path, depth)
    return items


_SIMPLE_TAGS: dict[str, Callable[[str], Any]] = {
    "$bytes": lambda a: base64.b64decode(a, validate=True),
    "$bytearray": lambda a: bytearray(base64.b64decode(a, validate=True)),
    "$datetime": dt.datetime.fromisoformat,
    "$date": dt.date.fromisoformat,
    "$time": dt.time.fromisoformat,
    "$decimal": decimal.Decimal,
    "$uuid": uuid.UUID,
    "$path": pathlib.Path,
}


def _decode_tag(tag: str, arg: Json, allow_pickle: bool, path: str, depth: int) -> Any:
    """A tag's value `arg` (at `depth`) decoded."""
    if tag in _SIMPLE_TAGS:
        if not isinstance(arg, str):
            raise TypeError("expected a string")
        return _SIMPLE_TAGS[tag](arg)
    if tag == "$float":
        if arg not in ("nan", "inf", "-inf"):
            raise ValueError(f"not a special float: {arg!r}")
        return float(str(arg))
    if tag == "$tuple":
        return tuple(_items(arg, allow_pickle, path, depth))
    if tag in ("$set", "$frozenset"):
        items = _items(arg, allow_pickle, path, depth)
        return set(items) if tag == "$set" else frozenset(items)
    if tag == "$dict":
        pairs = _items(arg, allow_pickle, path, depth)
        return {k: v for k, v in pairs}
    if tag == "$timedelta":
        days, seconds, micros = _items(arg, False, path, depth)
        return dt.timedelta(days=days, seconds=seconds, microseconds=micros)
    if tag == "$complex":
        real, imag = _items(arg, False, path, depth)
        return complex(float(real), float(imag))
    if tag in ("$enum", "$dataclass", "$repr"):
        if not isinstance(arg, dict) or not isinstance(arg.get("type"), str):
            raise TypeError("expected an object with a 'type'")
        if depth > MAX_DEPTH:
            raise _TooDeep
        return _decode_object(tag, arg, allow_pickle, path, depth)
    if tag == "$pickle":
        return _unpickle(arg, allow_pickle, path)
    raise DebugError(f"{path}: unknown tag {tag!r}; the file was written by a newer runner or is damaged")


def _decode_object(tag: str, arg: dict[str, Json], allow_pickle: bool, path: str, depth: int) -> Any:
    type_ref = str(arg["type"])
    if tag == "$repr":
        return Unrepresentable(type_ref, str(arg.get("text", "")))
    cls = _resolve_loaded_class(type_ref, path)
    if tag == "$enum":
        if not issubclass(cls, enum.Enum):
            raise DebugError(f"{path}: {type_ref!r} is not an Enum")
        return cls(_decode(arg.get("value"), allow_pickle, f"{path}.value", depth + 1))
    if not dataclasses.is_dataclass(cls):
        raise DebugError(f"{path}: {type_ref!r} is not a dataclass")
    fields = arg.get("fields")
    if not isinstance(fields, dict):
        raise TypeError("expected 'fields' to be an object")
    if depth + 1 > MAX_DEPTH:
        raise _TooDeep
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(fields) - known
    if unknown:
        raise DebugError(
            f"{path}: {type_ref!r} has no field(s) {sorted(unknown)}; the class changed since saving"
        )
    obj = cls.__new__(cls)
    for name, value in fields.items():
        object.__setattr__(obj, name, _decode(value, allow_pickle, f"{path}.{name}", depth + 2))
    return obj


def _resolve_loaded_class(type_ref: str, path: str) -> type:
    module_name, _, qualname = type_ref.partition(":")
    module = sys.modules.get(module_name)
    if module is None:
        raise DebugError(
            f"{path} holds a {qualname!r} from module {module_name!r}, which is not imported; import it before "
            "loading (loading never imports the modules a file names)"
        )
    obj: object = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if not isinstance(obj, type):
        raise DebugError(f"{path}: {type_ref!r} is not a class in the imported module {module_name!r}")
    return obj


def _unpickle(arg: Json, allow_pickle: bool, path: str) -> Any:
    payload = base64.b64decode(arg if isinstance(arg, str) else "", validate=True)
    if not allow_pickle:
        raise PickleRefused(
            f"{path} is a pickle payload (would import {', '.join(pickle_globals(payload)) or 'nothing'}); "
            "refusing to unpickle: load with allow_pickle=True only if you trust where the file came from"
        )
    try:
        return pickle.loads(payload)
    except Exception as e:  # unpickling raises arbitrary errors from the classes it rebuilds
        raise DebugError(f"{path}: pickle payload failed to load: {e}") from e


def dumps(value: object, *, lenient: bool = True) -> str:
    """One compact JSON string (used for span input/output attributes)."""
    return json.dumps(encode(value, lenient=lenient, path="value"), separators=(",", ":"), ensure_ascii=False)


def loads(text: str) -> Any:
    """Decode a string written by `dumps`; never unpickles. Plain JSON is accepted as is."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:  # ValueError: bad JSON, or an integer of 4,300+ digits
        raise DebugError(f"recorded value is not valid JSON ({_first_line(e)})") from e
    return decode(data, path="value")
