"""Config sections declared as dataclasses: each key once, with its type, default, allowed range and
meaning, next to the code that uses it.

    @dataclass
    class TrainerConfig(Section):
        max_epochs: int = setting(5, "epochs to train", minimum=1)

`validate(TrainerConfig, cfg.trainer, "trainer")` checks a composed config node against the
declaration and returns the typed section: a wrong type, a value out of range or an unknown key is
one `ConfigError` line that names the key, the value and what to use. Rules between keys are a
section's `check()`, written beside the builder they protect. Hydra composes its defaults from the
same declarations (`defaults`, registered by `seqmodels.config`), so a key is never repeated in YAML:
the YAML files hold only presets and choices.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import math
import operator
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from omegaconf import DictConfig, ListConfig, OmegaConf

from seqmodels.checks import is_int, is_number, require_bool, require_choice, require_int, require_number
from seqmodels.errors import ConfigError

S = TypeVar("S", bound="Section")


def setting(
    default: Any,
    help: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    low_open: bool = False,
    high_open: bool = True,
    choices: tuple[Any, ...] | None = None,
    hint: str = "",
    length: int | None = None,
    execution: bool = False,
) -> Any:
    """A declared key: its default and meaning; for numbers the allowed interval ([minimum, maximum],
    either end open), for strings the allowed `choices` (`hint` is added to the refusal), for lists
    their `length` (for lists of strings, the most they may hold; one string is a list of one).
    `execution`: the key says how the work is carried out, never what is computed (e.g. on which
    kernels), so a resumed run may change it."""
    metadata = {
        "help": help,
        "minimum": minimum,
        "maximum": maximum,
        "low_open": low_open,
        "high_open": high_open,
        "choices": choices,
        "hint": hint,
        "length": length,
        "execution": execution,
    }
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class Section:
    """A config section. Subclasses declare their keys with `setting` and may add `check()`."""

    def check(self) -> None:
        """Rules between this section's keys; raise ConfigError naming the keys and the fix."""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def keys(schema: type[Section]) -> list[str]:
    return [f.name for f in dataclasses.fields(schema)]


def execution_keys(schema: type[Section]) -> set[str]:
    """The keys declared with `execution=True`."""
    return {f.name for f in dataclasses.fields(schema) if f.metadata.get("execution")}


def defaults(schema: type[Section]) -> dict[str, Any]:
    """The declared defaults, as Hydra composes them."""
    return dataclasses.asdict(schema())


def help_lines(schema: type[Section], prefix: str) -> list[str]:
    """`prefix.key (type, default): meaning` for every key: the reference `python train.py --keys` prints."""
    hints = typing.get_type_hints(schema)
    lines = []
    for f in dataclasses.fields(schema):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[operator]
        kind = _type_name(hints[f.name])
        lines.append(
            f"{prefix + '.' if prefix else ''}{f.name} ({kind}, default {shown(default)}): {f.metadata.get('help', '')}"
        )
    return lines


def shown(value: Any) -> str:
    """A value as it is written in an override, on one line: `null`, `true`, `0.3`, `[0.9, 0.999]`."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(shown(item) for item in value) + "]"
    return OmegaConf.to_yaml({"v": value}).strip()[3:]


def _type_name(annotation: Any) -> str:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if _optional(annotation):
        return f"{' or '.join(_type_name(a) for a in args)} or null"
    if _column(annotation):
        return "int or str"
    if typing.get_origin(annotation) is list:
        return f"list of {_type_name(args[0])}"
    return getattr(annotation, "__name__", str(annotation))


def _optional(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in typing.get_args(
        annotation
    )


def _column(annotation: Any) -> bool:
    """`int | str`: a column of a file, by number or by name."""
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and set(typing.get_args(annotation)) == {
        int,
        str,
    }


def suggest_key(key: str, known: list[str], prefix: str) -> str:
    """`prefix.key is not a key of prefix; did you mean ...`: the one line for an unknown key."""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    dotted = f"{prefix}." if prefix else ""
    hint = f"did you mean {dotted}{close[0]}? " if close else ""
    where = f"of `{prefix}`" if prefix else "at the top level"
    return f"{dotted}{key} is not a setting {where}; {hint}known keys: {', '.join(sorted(known))}"


def validate(schema: type[S], node: Mapping[str, Any] | DictConfig | None, prefix: str) -> S:
    """The section `schema` filled from `node` (keys it lacks take their defaults), every value checked."""
    if node is None:
        node = {}
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=True)  # type: ignore[assignment]
    if not isinstance(node, Mapping):
        raise ConfigError(f"{prefix}={node!r} must be a group of settings ({prefix}.KEY=VALUE), not a value")
    known = keys(schema)
    for key in node:
        if key not in known:
            raise ConfigError(suggest_key(str(key), known, prefix))
    hints = typing.get_type_hints(schema)
    values = {}
    for f in dataclasses.fields(schema):
        if f.name not in node:
            continue
        values[f.name] = _checked(f"{prefix}.{f.name}" if prefix else f.name, node[f.name], hints[f.name], f.metadata)
    section = schema(**values)
    section.check()
    return section


def option_name(key: str) -> str:
    """The script option of a declared key: `--beam-size` for `beam_size`."""
    return "--" + key.replace("_", "-")


def add_options(
    group: argparse._ArgumentGroup,
    schema: type[Section],
    names: tuple[str, ...] | None = None,
    *,
    run_section: str | None = None,
) -> None:
    """The keys of `schema` (or those `names`) as script options (`option_name`) with default None, so that only
    the options a user gives reach the task; each option's help is the key's declared meaning and default, or,
    with `run_section`, says that the run's own `run_section.key` is the default. A bool key is a flag."""
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        if names is not None and f.name not in names:
            continue
        annotation = hints[f.name]
        if _optional(annotation):
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        default = f.default if f.default is not dataclasses.MISSING else None
        if run_section:
            shown_default = f" (default: the run's {run_section}.{f.name})"
        else:
            unshown = default is None or annotation is bool  # a flag is off unless given
            shown_default = "" if unshown else f" (default: {OmegaConf.to_yaml({'v': default}).strip()[3:]})"
        text = (f.metadata.get("help", "") + shown_default).replace("%", "%%")
        if annotation is bool:
            group.add_argument(option_name(f.name), action="store_const", const=True, help=text)
        else:
            group.add_argument(option_name(f.name), type=annotation, help=text)


def with_options(section: S, options: Mapping[str, Any]) -> S:
    """`section` with the script options given in `options` (None: not given) in place of its keys' values,
    each checked as its option (`--beam-size=0 is impossible; ...`), then the section's `check()`; options of
    other sections are ignored."""
    hints = typing.get_type_hints(type(section))
    values = {
        f.name: _checked(option_name(f.name), options[f.name], hints[f.name], f.metadata)
        for f in dataclasses.fields(section)
        if options.get(f.name) is not None
    }
    changed = dataclasses.replace(section, **values)
    changed.check()
    return changed


def _checked(name: str, value: Any, annotation: Any, meta: Mapping[str, Any]) -> Any:
    optional = _optional(annotation)
    if optional:
        if value is None:
            return None
        others = tuple(a for a in typing.get_args(annotation) if a is not type(None))
        annotation = functools.reduce(operator.or_, others)  # int | str without None
    if isinstance(value, ListConfig):
        value = list(value)
    low = meta.get("minimum")
    if _column(annotation):
        if not (is_int(value) or isinstance(value, str)) or value == "":
            raise ConfigError(f"{name}={value!r} is impossible; name a column by its number (0 the first) or its name")
    elif annotation is bool:
        require_bool(name, value)
    elif annotation is int:
        require_int(name, value, minimum=int(low) if low is not None else -(2**63), allow_none=optional)
        if meta.get("maximum") is not None and value > meta["maximum"]:
            raise ConfigError(f"{name}={value!r} is impossible; it must be at most {meta['maximum']}")
    elif annotation is float:
        require_number(
            name,
            value,
            -math.inf if low is None else low,
            math.inf if meta.get("maximum") is None else meta["maximum"],
            low_open=meta.get("low_open", False),
            high_open=meta.get("high_open", True) if meta.get("maximum") is not None else True,
            allow_none=optional,
        )
        value = float(value)
    elif annotation is str:
        if meta.get("choices") is not None:
            value = str(value) if is_int(value) and str(value) in meta["choices"] else value  # precision=32
            require_choice(name, value, meta["choices"], meta.get("hint", ""))
        elif not isinstance(value, str):
            raise ConfigError(f"{name}={value!r} must be a string{' or null' if optional else ''}")
    elif typing.get_origin(annotation) is list and _column(typing.get_args(annotation)[0]):
        value = value if isinstance(value, list) else [value]  # one column is a list of one
        if not value or not all((is_int(v) or isinstance(v, str)) and v != "" for v in value):
            raise ConfigError(
                f"{name}={value!r} is impossible; name each column by its number (0 the first) or its name"
            )
    elif typing.get_origin(annotation) is list and typing.get_args(annotation)[0] is str:
        value = [value] if isinstance(value, str) else value  # one string is a list of one
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise ConfigError(
                f"{name}={value!r} is impossible; {meta.get('hint') or 'use a string or a list of strings'}"
            )
        if meta.get("length") is not None and len(value) > meta["length"]:
            raise ConfigError(f"{name}={value!r} holds {len(value)} values; at most {meta['length']} are allowed")
    elif typing.get_origin(annotation) is list:
        item = typing.get_args(annotation)[0]
        ok = isinstance(value, list) and all(is_int(v) if item is int else is_number(v) for v in value)
        if ok and item is float and low is not None:
            ok = all(v >= low and (meta.get("maximum") is None or v < meta["maximum"]) for v in value)
        if ok and meta.get("length") is not None:
            ok = len(value) == meta["length"]
        if not ok:
            raise ConfigError(f"{name}={value!r} is impossible; {meta.get('hint') or 'use a list of numbers'}")
        value = [float(v) for v in value] if item is float else list(value)
    return value
