"""Loading a profile file: TOML (or JSON), ``${ENV}`` expanded, validated; errors name the field and its line."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Mapping

from pydantic import ValidationError

from .._validate import ConfigError
from .schema import PROFILE_VERSION, ProfileFile
from .template import TemplateError, expand_env

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PROFILES_DIR = Path(__file__).resolve().parent.parent / "profiles"
BUILT_IN = {path.stem: path for path in sorted(PROFILES_DIR.glob("*.toml"))}


class ProfileError(ConfigError):
    """A profile that cannot be used: one line naming the field (and its line in the file)."""


def load_profile(path: str | Path, variables: Mapping[str, str] | None = None, *,
                 base_url: str | None = None) -> "Profile":  # noqa: F821 (the package's Profile)
    """The profile in ``path`` (a file, or a built-in name such as ``reference``).

    ``variables`` fill ``${NAME}`` (default: the environment); ``base_url`` replaces the file's.
    """
    from . import Profile

    source = BUILT_IN.get(str(path), Path(path))
    label = f"profile {path}"
    try:
        text = source.read_text()
    except OSError as exc:
        raise ProfileError(f"{label}: cannot read {source}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if source.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"{label}: not valid {'JSON' if source.suffix == '.json' else 'TOML'}: {exc}") from None
    variables = dict(os.environ if variables is None else variables)
    if base_url is not None:
        data["base_url"] = base_url
    return Profile(parse_profile(data, label, variables=variables, text=text))


def parse_profile(data: Any, source: str = "profile", *, variables: Mapping[str, str] | None = None,
                  text: str | None = None) -> ProfileFile:
    """A validated profile from plain data; ProfileError names the first wrong field (and its line)."""
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: a profile is a table of fields, not {type(data).__name__}")
    if data.get("version") != PROFILE_VERSION:
        raise ProfileError(f"{source}: version: must be {PROFILE_VERSION} (got {data.get('version')!r})")
    try:
        expanded = expand_env(data, variables or {}) if variables is not None else data
    except TemplateError as exc:
        field = str(exc).split(":", 1)[0]
        raise ProfileError(f"{source}: {exc}{_line(text, field.split('.'))}") from None
    try:
        return ProfileFile.model_validate(expanded)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = [str(p) for p in error["loc"]]
        message = error["msg"].removeprefix("Value error, ")
        # An error raised by a whole-file rule names its field in the message ("effects.0.key: ...").
        if not loc and (named := re.match(r"^([a-z_]+(?:\.[\w]+)+): (.*)$", message)):
            loc, message = named.group(1).split("."), named.group(2)
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        elif error["type"] == "missing":
            message = "missing (required)"
        where = ".".join(loc) or "(the whole file)"
        raise ProfileError(f"{source}: {where}{_line(text, loc)}: {message}") from None


def _line(text: str | None, loc: list[str]) -> str:
    """`` (line N)`` of the TOML line that sets the field at ``loc`` (or its table), when it can be found."""
    if not text or not loc:
        return ""
    best, best_len = None, 0
    table: list[str] = []
    arrays: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[["):
            name = line.strip("[] ")
            arrays[name] = arrays.get(name, -1) + 1
            table = [*name.split("."), str(arrays[name])]
            path = table
        elif line.startswith("["):
            table = line.strip("[] ").split(".")
            path = table
        elif "=" in line:
            key = line.split("=", 1)[0].strip().strip('"')
            path = [*table, *key.split(".")]
        else:
            continue
        common = 0
        for a, b in zip(path, loc):
            if a != b:
                break
            common += 1
        if common == len(path) and common > best_len:
            best, best_len = number, common
    return f" (line {best})" if best else ""
