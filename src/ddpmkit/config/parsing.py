"""Reading and writing configs: files (TOML, YAML, JSON), presets and command-line overrides.

Every key is checked against the dataclass fields and every value against the field's type; a
mistake is an error that names the key (and the file or flag it came from).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import math
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")
_TRUE, _FALSE = {"true", "yes", "1", "on"}, {"false", "no", "0", "off"}


class ConfigError(ValueError):
    """A config key or value that does not fit the configuration dataclasses."""


def from_dict(cls: type[T], values: dict[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from a nested dict, rejecting unknown keys and ill-typed values."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a table of options, got {values!r}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    names = list(fields)
    kwargs = {}
    for key, value in values.items():
        if not isinstance(key, str):  # YAML's `?` or `1:` make keys that are no names
            raise ConfigError(f"{where}: the key {key!r} is not an option name")
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = (
                f" (did you mean {close[0]!r}?)" if close else f"; valid keys: {', '.join(names)}"
            )
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")
        kwargs[key] = coerce(value, hints[key], f"{where}.{key}")
        _check_choices(kwargs[key], fields[key], f"{where}.{key}")
        _check_finite(kwargs[key], fields[key], f"{where}.{key}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where}: {error}") from error


def _check_finite(value: Any, f: dataclasses.Field[Any], where: str) -> None:
    """A float option (or a float in a list) must be finite: NaN and ±inf are errors naming it,
    unless the field's metadata says ``infinite`` (a bound that may be absent)."""
    values = value if isinstance(value, tuple) else (value,)
    for item in values:
        is_float = isinstance(item, float) and not isinstance(item, bool)
        if is_float and not math.isfinite(item) and not f.metadata.get("infinite", False):
            raise ConfigError(f"{where}: must be a finite number, got {item}")


def _check_choices(value: Any, f: dataclasses.Field[Any], where: str) -> None:
    """A value outside a field's ``choices`` metadata is an error naming the valid values."""
    choices = f.metadata.get("choices")
    if choices is not None and value is not None and value not in choices:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, choices))}")


def upgrade(values: dict[str, Any]) -> dict[str, Any]:
    """A stored config from an older ddpmkit in today's keys: ``train.bf16`` became ``precision``."""
    train = values.get("train")
    if isinstance(train, dict) and "bf16" in train:
        train = {k: v for k, v in train.items() if k != "bf16"}
        train["precision"] = "bf16" if values["train"]["bf16"] else "fp32"
        return {**values, "train": train}
    return values


def to_dict(config: Any) -> dict[str, Any]:
    """A dataclass as a nested dict of plain values (tuples become lists)."""
    plain: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(config)))
    return plain


def merge(base: dict[str, Any], update: dict[str, Any], where: str = "") -> dict[str, Any]:
    """Nested dicts merged key by key; ``update`` wins. An empty section (YAML's ``train:`` with
    nothing under it) sets nothing; a section given as anything but a table is an error, never a
    silent replacement of the whole section."""
    merged = dict(base)
    for key, value in update.items():
        name = f"{where}{key}"
        old = merged.get(key)
        if value is None and (isinstance(old, dict) or not where):  # an empty (sub)section
            continue
        if isinstance(old, dict) and isinstance(value, dict):
            merged[key] = merge(old, value, f"{name}.")
        elif isinstance(old, dict) or (isinstance(value, dict) and old is not None):
            wrong = value if isinstance(old, dict) else old
            raise ConfigError(f"{name}: a section must be a table of keys, got {wrong!r}")
        else:
            merged[key] = value
    return merged


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A nested dict from a .toml, .yaml/.yml or .json file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"{path}: config files must end in .toml, .yaml, .yml or .json")
    except (tomllib.TOMLDecodeError, yaml.YAMLError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: cannot parse: {error}") from error
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a table of sections")
    return data


def coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` (from a file, or a string from a flag) checked and converted to type ``hint``."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, args, where)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin is tuple:
        return _coerce_tuple(value, args, where)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)  # type: ignore[arg-type]
    if hint is bool:
        return _coerce_bool(value, where)
    if hint in (int, float, str):
        return _coerce_scalar(value, hint, where)
    raise ConfigError(f"{where}: unsupported option type {hint!r}")


def _coerce_union(value: Any, args: tuple[Any, ...], where: str) -> Any:
    is_none = value is None or (isinstance(value, str) and value.lower() == "none")
    if is_none and type(None) in args:
        return None
    errors = []
    for arg in (a for a in args if a is not type(None)):
        try:
            return coerce(value, arg, where)
        except ConfigError as error:
            errors.append(str(error))
    raise ConfigError(
        errors[0] if len(errors) == 1 else f"{where}: {value!r} fits none of its types"
    )


def _coerce_tuple(value: Any, args: tuple[Any, ...], where: str) -> tuple[Any, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.strip("()[] ").split(",") if v.strip()]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: expected a list, got {value!r}")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if len(value) != len(args):
        raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
    return tuple(
        coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))
    )


def _coerce_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise ConfigError(f"{where}: expected true or false, got {value!r}")


def _coerce_scalar(value: Any, kind: type, where: str) -> Any:
    if isinstance(value, bool) or value is None:
        raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}")
    if kind is float and isinstance(value, int):
        return float(value)
    if kind is str and isinstance(value, os.PathLike):  # a Path given from Python
        return os.fspath(value)
    if isinstance(value, kind):
        return value
    if isinstance(value, str):
        try:
            return kind(value)
        except ValueError:
            pass
    raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}")


def field_choices(f: dataclasses.Field[Any], hint: Any) -> tuple[Any, ...] | None:
    """The values a field accepts: its ``choices`` metadata or its Literal's values (None: any)."""
    if "choices" in f.metadata:
        return tuple(f.metadata["choices"])
    literals = [a for a in _union_members(hint) if get_origin(a) is typing.Literal]
    return tuple(v for a in literals for v in get_args(a)) if literals else None


def add_config_flags(
    parser: argparse.ArgumentParser,
    cls: type,
    prefix: str = "",
    *,
    defaults_from: str | None = None,
    title: str | None = None,
) -> None:
    """One ``--section.key VALUE`` flag per leaf option of ``cls``, documented by its field.

    The help is the field's ``help`` metadata, its choices (a Literal's values or the ``choices``
    metadata) and its default. The default shown is the value a run uses: the dataclass default,
    or a text where something else decides it: the field's ``default_text`` metadata, or the
    enclosing section's ``default_texts`` (the network's input channels come from the data).
    Where the options default to values stored elsewhere (``ddpmkit sample`` reads them from the
    checkpoint), ``defaults_from`` names that place, e.g. ``"the checkpoint"``, and the default
    above is shown as the one a new run gets.

    ``--help`` shows each section's flags as one argument group, in the order of the fields,
    titled by the section's name and its ``help`` metadata (``model.unet (the U-Net; …)``). The
    flags of ``cls`` itself (``ddpmkit sample``'s one section) form the group titled ``title``
    (by default one saying where their defaults come from).
    """
    if title is None:
        title = "settings" if defaults_from is None else f"settings (default: {defaults_from}'s)"
    _add_section(parser, cls, prefix, title, defaults_from, {})


def _add_section(
    parser: argparse.ArgumentParser,
    cls: type,
    prefix: str,
    title: str,
    defaults_from: str | None,
    default_texts: dict[str, str],
) -> None:
    """The flags of section ``cls`` (``prefix`` before each name) in an argument group ``title``,
    then those of each subsection in a group of its own; ``default_texts`` as in
    ``add_config_flags``."""
    hints = get_type_hints(cls)
    fields = dataclasses.fields(cls)
    has_leaves = any(not dataclasses.is_dataclass(hints[f.name]) for f in fields)
    group = parser.add_argument_group(title) if has_leaves else None
    for f in fields:
        name, hint = f"{prefix}{f.name}", hints[f.name]
        if dataclasses.is_dataclass(hint):
            section: Any = hint
            texts = f.metadata.get("default_texts", {})
            heading = f"{name} ({f.metadata['help']})" if f.metadata.get("help") else name
            _add_section(parser, section, f"{name}.", heading, defaults_from, texts)
        elif group is not None:
            _add_flag(group, f, hint, name, defaults_from, default_texts.get(f.name))


def _add_flag(
    group: argparse._ArgumentGroup,
    f: dataclasses.Field[Any],
    hint: Any,
    name: str,
    defaults_from: str | None,
    default_text: str | None,
) -> None:
    """The flag ``--name`` of field ``f`` (of type ``hint``) in ``group``; ``default_text``: the
    enclosing section's text for its default, if it has one."""
    choices = field_choices(f, hint)
    text = f.metadata.get("help", "")
    if choices is not None:
        text += f"; one of {', '.join(_choice_names(hint, choices))}"
    default = default_text or f.metadata.get("default_text") or format_value(_default(f))
    if defaults_from is not None:
        default = f"{defaults_from}'s; {default} for a new run"
    group.add_argument(
        f"--{name}",
        dest=f"config:{name}",
        default=argparse.SUPPRESS,
        metavar=_metavar(hint, choices),
        help=f"{text} (default: {default})".replace("%", "%%"),
    )


def format_value(value: Any) -> str:
    """An option's value as it is written on the command line: none, true, 1,2,2, linear."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return ",".join(map(format_value, value))
    return str(value)


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The nested dict of the ``--section.key`` flags that were given (values still strings)."""
    nested: dict[str, Any] = {}
    for dest, value in vars(args).items():
        if not dest.startswith("config:"):
            continue
        *parents, leaf = dest.removeprefix("config:").split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _union_members(hint: Any) -> tuple[Any, ...]:
    if get_origin(hint) in (typing.Union, types.UnionType):
        return get_args(hint)
    return (hint,)


def _choice_names(hint: Any, choices: tuple[Any, ...]) -> list[str]:
    """The choices as typed on the command line, and ``none`` where the option is Optional."""
    optional = type(None) in _union_members(hint)
    return [*map(format_value, choices), *(["none"] if optional else [])]


def _metavar(hint: Any, choices: tuple[Any, ...] | None) -> str:
    """``{a,b,none}`` for choices, else the type: ``INT``, ``FLOAT,FLOAT``, ``INT,...|none``."""
    if choices is not None:
        return "{" + ",".join(_choice_names(hint, choices)) + "}"
    members = _union_members(hint)
    names = [_type_metavar(m) if m is not type(None) else "none" for m in members]
    return "|".join(sorted(names, key=lambda n: n == "none"))


def _type_metavar(hint: Any) -> str:
    if get_origin(hint) is tuple:
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"{_type_metavar(args[0])},..."
        return ",".join(_type_metavar(a) for a in args)
    return getattr(hint, "__name__", "VALUE").upper()
