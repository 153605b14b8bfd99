"""Search spaces: a registry of the built-in factorized spaces plus YAML spaces loaded from files."""

from __future__ import annotations

from pathlib import Path

from nas.errors import SpaceError, unknown_name
from nas.registry import Registry
from search_spaces.base import FactorizedSpace, ProxyConfig, StageBase
from search_spaces.yaml_space import load_yaml_space, space_from_dict

# name -> zero-argument function returning the space
SPACES: Registry = Registry("space", {
    "efficientnet": "search_spaces.builtin:efficientnet_space",
    "mnasnet": "search_spaces.builtin:mnasnet_space",
    "efficientnetv2": "search_spaces.builtin:efficientnet_v2_space",
}, error=SpaceError)


def make_space(name_or_path: str) -> FactorizedSpace:
    """A built-in space by name, or a YAML space by file path (``.yaml`` / ``.yml``)."""
    if name_or_path in SPACES:
        return SPACES[name_or_path]()
    if Path(str(name_or_path)).suffix in (".yaml", ".yml"):
        return load_yaml_space(name_or_path)
    raise unknown_name("space", str(name_or_path), [*SPACES, "FILE.yaml"], SpaceError)


__all__ = ["SPACES", "FactorizedSpace", "ProxyConfig", "StageBase", "make_space", "load_yaml_space",
           "space_from_dict"]
