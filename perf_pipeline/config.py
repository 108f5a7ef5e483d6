"""Loading the YAML configurations users edit (scoring, aggregates, alerts): the defaults shipped in
a package, with the user's file merged over them, validated by a pydantic model.

One loader for all of them, so every configuration behaves the same: the user's file only holds the
keys it changes (mappings merge key by key; lists and scalars replace), an unknown key is an error,
and every error names the file, the line and the key path.

Also here: how far the daily assets' partition mappings reach, because the configurations' windows
must not reach further (a window longer than its mapping would read days the automation never
rebuilds when they change).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

# The longest window of any daily asset, in days: windows, trends, baselines and reviewer leniency
# read at most this many days ending with the partition's day.
MAX_WINDOW_DAYS = 90
# collaboration_scores of a day depend on the messages of this many days after it (late answers).
ANSWER_LOOKAHEAD_DAYS = 2

Model = TypeVar("Model", bound=BaseModel)


class Strict(BaseModel):
    """Base of configuration models: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ConfigError(ValueError):
    """A configuration file is unreadable or invalid; the message names the file, the line and the key."""


def load_config(model: type[Model], package: str, defaults: str, env_var: str,
                path: str | Path | None = None, moved: dict[str, str] | None = None) -> Model:
    """``defaults`` (a YAML file of ``package``) with ``path``, or the file ``$env_var`` names,
    merged over it, validated as ``model``.

    ``moved`` maps top-level keys that used to belong here to where they went, so that an old file
    gets an error saying so rather than "extra inputs are not permitted"."""
    merged = yaml.safe_load(default_text(package, defaults))
    source = str(path or os.environ.get(env_var) or "") or None
    user_text = None
    if source:
        try:
            user_text = Path(source).read_text(encoding="utf-8")
            user = yaml.safe_load(user_text) or {}
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{source} (from {env_var}): cannot read the configuration: {exc}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
        if not isinstance(user, dict):
            raise ConfigError(f"{source}: expected a mapping of sections at the top level")
        for key, destination in (moved or {}).items():
            if key in user:
                raise ConfigError(f"{source}: line {_line(user_text, (key,))}, {key}: this section moved to "
                                  f"{destination}")
        merged = _merge(merged, user)
    try:
        return model.model_validate(merged)
    except ValidationError as exc:
        where = source or f"{defaults} (defaults)"
        problems = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            line = _line(user_text, loc) if user_text is not None else None
            problems.append(f"{'line ' + str(line) + ', ' if line else ''}{_path(loc, merged)}: {error['msg']}")
        raise ConfigError(f"{where}: " + "; ".join(problems)) from exc


def default_text(package: str, defaults: str) -> str:
    """The text of a package's default configuration file."""
    return resources.files(package).joinpath(defaults).read_text(encoding="utf-8")


def _path(loc: tuple[Any, ...], data: Any) -> str:
    """``loc`` as a dotted key path; an item of a list that has a name is called by it
    (``rules[low_success_rate].window_days``, not ``rules.0.window_days``)."""
    parts: list[str] = []
    for part in loc:
        named = (isinstance(part, int) and isinstance(data, list) and part < len(data)
                 and isinstance(data[part], dict) and data[part].get("name"))
        if named and parts:
            parts[-1] += f"[{data[part]['name']}]"
        else:
            parts.append(str(part))
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            data = None
    return ".".join(parts)


def _line(text: str, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the deepest node of ``loc`` (keys and list indices) present in the YAML
    ``text``; None when not even the first key is (the value came from the defaults)."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((value for key, value in node.value if key.value == str(part)), None)
            if child is not None:
                line = next(key for key, value in node.value if value is child).start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``, mappings merged key by key (lists and scalars replaced)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
