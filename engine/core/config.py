"""Every config's fields checked in one place: type and range, declared beside each field's default.

A config dataclass declares the range of a field with its default,

    hidden_size: int = field(default=25, metadata=spec(1, MAX_HIDDEN))
    rho: float = field(default=0.01, metadata=spec(0, 1, above=True, below=True, label="rho (a target mean activation)"))

and its `validate()` starts with `check_fields(self)`, which checks every field against its annotation
and its range: a bool is not a number, a whole-number field refuses 1.5 and "3", a number must be
finite (nan and inf are refused by name), and a value outside its range gets a message naming the
value and the limit ("seed must be between 0 and 2**63-1, got 99999999999999999999999"). Rules that
tie fields together stay in each config's `validate()`, each a `require(ok, message)`. `from_dict` builds a
config from a card's JSON (or any value at all) and gives the config or a `ConfigError`, never another exception.
A trainer's config takes both ways in from `Config`, naming its settings once:

    @dataclass(frozen=True)
    class SAETrainConfig(Config, what="SAE settings", renamed={"max_iter": "max_iters"}):
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass, fields, replace
from functools import cache
from typing import Any, Self

from engine.core.errors import ConfigError

MAX_SEED = 2**63 - 1  # torch.manual_seed takes up to 2**64 - 1, numpy any size: a signed 64-bit seed suits both
SPEC = "range"  # the key of a field's metadata that holds its Range


@dataclass(frozen=True)
class Range:
    """What a field accepts beyond its type; the message is written from it."""

    low: float | None = None
    high: float | None = None
    above: bool = False  # the value must be above `low`, not merely at least `low`
    below: bool = False  # the value must be below `high`, not merely at most `high`
    choices: tuple = ()  # for text: the values accepted
    label: str = ""  # how messages name the field, e.g. "depth (residual blocks per level)"; default: its name
    unit: str = ""  # written after the limit: "between 2 and 32 pixels"
    note: str = ""  # written after the rule: "cannot be negative (0 turns clipping off)"
    high_text: str = ""  # how the upper limit is written, e.g. "2**63-1"

    def rule(self) -> str:
        low, high = _number(self.low), self.high_text or _number(self.high)
        unit = f" {self.unit}" if self.unit else ""
        if self.low is not None and self.high is not None:
            if self.above and self.below:
                text = f"must lie strictly between {low} and {high}"
            elif self.above:
                text = f"must be above {low} and at most {high}"
            elif self.below:
                text = f"must be at least {low} and below {high}"
            else:
                text = f"must be between {low} and {high}"
        elif self.low is not None:
            text = f"must be above {low}" if self.above else ("cannot be negative" if self.low == 0 else f"must be at least {low}")
        elif self.high is not None:
            text = f"must be below {high}" if self.below else f"must be at most {high}"
        else:
            text = ""
        if self.low == 0 and not self.above and self.high is None:
            unit = ""  # "cannot be negative" takes no unit
        return text + unit + (f" {self.note}" if self.note else "")

    def holds(self, value) -> bool:
        if self.low is not None and (value <= self.low if self.above else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.below else value > self.high):
            return False
        return True


def spec(low=None, high=None, **details) -> dict:
    """A field's metadata declaring its range: `field(default=..., metadata=spec(1, 400))`."""
    return {SPEC: Range(low, high, **details)}


SEED = Range(0, MAX_SEED, high_text="2**63-1")


def seed_spec() -> dict:
    return {SPEC: SEED}


def _number(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    return repr(value)


def _shown(value) -> str:
    """A value as a message shows it: numbers plainly, anything else as Python writes it, cut short."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**60:
        return f"a number of {len(format(abs(value), 'x')) * 4} bits"  # str() itself refuses ints past 4,300 digits
    text = str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@cache
def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _parts(hint) -> tuple[Any, bool]:
    """A field's annotation -> (its type, whether None is accepted)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        kinds = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return kinds[0], len(kinds) < len(typing.get_args(hint))
    return hint, False


def _typed(name: str, value, kind):
    """`value` as a `kind` (int, float, bool, str or tuple[int, ...]), or a ConfigError saying what it is not."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name} must be true or false, got {_shown(value)}.")
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{name} must be a whole number, got {_shown(value)}.")
        return value
    if kind is float:
        if not is_number:
            raise ConfigError(f"{name} must be a number, got {_shown(value)}.")
        try:
            number = float(value)
        except OverflowError:
            raise ConfigError(f"{name} is far too large, got {_shown(value)}.") from None
        if not math.isfinite(number):
            raise ConfigError(f"{name} must be a finite number, got {number}.")
        return number
    if kind is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{name} must be text, got {_shown(value)}.")
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        if not isinstance(value, (list, tuple)) or len(value) > 64:
            raise ConfigError(f"{name} must be a list of up to 64 {'whole numbers' if item is int else 'values'}, got {_shown(value)}.")
        return tuple(_typed(f"each of {name}", part, item) for part in value)
    return value


def check_value(name: str, value, kind, allowed: Range | None = None):
    """One value checked against its type and range; returns it as that type (an int as a float for a float)."""
    allowed = allowed or Range()
    label = allowed.label or name
    value = _typed(label, value, kind)
    if allowed.choices and value not in allowed.choices:
        raise ConfigError(f"{label} must be one of {', '.join(map(str, allowed.choices))}, got {_shown(value)}.")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not allowed.holds(value):
        raise ConfigError(f"{label} {allowed.rule()}, got {_shown(value)}.")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SEED:  # torch and numpy hold whole numbers in 64 bits
        raise ConfigError(f"{label} must be between -2**63 and 2**63-1, got {_shown(value)}.")
    return value


def _checked(cls, name: str, value):
    kind, optional = _parts(_hints(cls)[name])
    if value is None and optional:
        return None
    allowed = next((f.metadata.get(SPEC) for f in fields(cls) if f.name == name), None)
    return check_value(name, value, kind, allowed)


def check_fields(config) -> None:
    """Every field of a config dataclass against its annotation and declared range; ConfigError on the first that fails."""
    for item in fields(config):
        _checked(type(config), item.name, getattr(config, item.name))


def require(ok: bool, message: str) -> None:
    """A rule that ties fields together, in validate(): a ConfigError with `message` when it does not hold."""
    if not ok:
        raise ConfigError(message)


def from_dict(cls, values, what: str, renamed: dict[str, str] | None = None):
    """A config of class `cls` from a dict (a card's JSON), each field typed and in range; unknown keys refused.

    `what` names the settings in messages: "Unknown SAE settings: width." `renamed` maps a field's old name to
    its new one, so a card written before a rename still loads (a run kept on a Space's disk outlives a release).
    """
    if not isinstance(values, dict):
        raise ConfigError(f"The {what} must be a mapping of names to values, got {_shown(values)}.")
    for old_name, new_name in (renamed or {}).items():
        if old_name in values and new_name not in values:
            values = {new_name if key == old_name else key: value for key, value in values.items()}
    known = {item.name for item in fields(cls)}
    unknown = sorted(key if key.isidentifier() else _shown(key) for key in map(str, values) if key not in known)
    if unknown:
        raise ConfigError(f"Unknown {what}: {', '.join(unknown)}.")
    return cls(**{name: _checked(cls, name, value) for name, value in values.items()})


def from_form(cls, values: dict, what: str):
    """A config from a page's number inputs, which hand back 25.0 as readily as 25: a whole float for a
    whole-number field is taken as that number; anything else is checked as `from_dict` checks it."""
    whole = {name for name, hint in _hints(cls).items() if _parts(hint)[0] is int}
    return from_dict(cls, {name: _whole(value) if name in whole else value for name, value in values.items()}, what)


class Config:
    """`from_dict` and `from_form` for a frozen config dataclass, which names its settings for messages as it
    subclasses this: `class GPTTrainConfig(Config, what="GPT training settings")`. `renamed` maps a field's old
    name to its new one for cards (see from_dict); a page's form always uses the new names."""

    _what = "settings"  # not annotated: typing.get_type_hints, which reads the fields' types, would list them
    _renamed = {}

    def __init_subclass__(cls, what: str = "", renamed: dict[str, str] | None = None, **rest):
        super().__init_subclass__(**rest)
        cls._what = what or cls._what
        cls._renamed = dict(renamed or {})

    @classmethod
    def from_dict(cls, values: dict) -> Self:
        return from_dict(cls, values, cls._what, renamed=cls._renamed)

    @classmethod
    def from_form(cls, values: dict) -> Self:
        """From a page's number inputs, which may hand back 64.0 for 64."""
        return from_form(cls, values, cls._what)


def _whole(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def accepts(cls, name: str, text: str) -> bool:
    """Whether a field of `cls` can take the value an address spells as `text` ("2", "0.5", "true"): its type and range."""
    kind, optional = _parts(_hints(cls)[name])
    try:
        if kind is bool:
            value = {"true": True, "false": False}[text.strip().lower()]
        elif kind in (int, float):
            value = float(text)
            value = _whole(value) if kind is int else value
        else:
            value = text
        _checked(cls, name, value)
    except (ConfigError, KeyError, ValueError, OverflowError, TypeError):
        return False
    return True


def preset_named(config, presets: dict, ignoring: tuple[str, ...]):
    """The name in `presets` of the preset `config` is, setting aside the fields in `ignoring` (where it runs, its
    seed): a run's folder and card say "cpu" rather than "custom" for the recipe run elsewhere. None for any other."""
    for name, preset in presets.items():
        if replace(config, **{field: getattr(preset, field) for field in ignoring}) == preset:
            return name
    return None


def same_spec(cls, name: str) -> dict:
    """The range another config declares for a field this one passes on to it (a trainer's n_layer is its model's),
    so both check it alike and it is written in one place."""
    return dict(next(f.metadata for f in fields(cls) if f.name == name))
