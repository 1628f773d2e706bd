"""Loading a profile file: TOML (or JSON), ``${ENV}`` expanded, validated; errors name the field and its line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Mapping


from harness.errors import ProfileError
from harness.profile.contract import Profile
from harness.profile.schema import parse_profile

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PROFILES_DIR = Path(__file__).resolve().parent.parent / "profiles"
BUILT_IN = {path.stem: path for path in sorted(PROFILES_DIR.glob("*.toml"))}


def load_profile(path: str | Path, variables: Mapping[str, str] | None = None, *,
                 base_url: str | None = None) -> Profile:
    """The profile in ``path`` (a file, or a built-in name such as ``reference``).

    ``variables`` fill ``${NAME}`` (default: the environment); ``base_url`` replaces the file's.
    """
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
    origin = {"from": "built-in profile", "name": str(path)} if str(path) in BUILT_IN else {"from": "profile file", "path": str(path)}
    return Profile(parse_profile(data, label, variables=variables, text=text), origin)
