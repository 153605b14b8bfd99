"""Search spaces: a registry of the built-in factorized spaces plus YAML spaces loaded from files."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from nas.errors import SpaceError, unknown_name
from search_spaces.base import FactorizedSpace, ProxyConfig, StageBase
from search_spaces.builtin import efficientnet_space, efficientnet_v2_space, mnasnet_space
from search_spaces.yaml_space import load_yaml_space, space_from_dict

SPACES: dict[str, Callable[[], FactorizedSpace]] = {
    "efficientnet": efficientnet_space,
    "mnasnet": mnasnet_space,
    "efficientnetv2": efficientnet_v2_space,
}


def make_space(name_or_path: str) -> FactorizedSpace:
    """A built-in space by name, or a YAML space by file path (``.yaml`` / ``.yml``)."""
    if name_or_path in SPACES:
        return SPACES[name_or_path]()
    if Path(name_or_path).suffix in (".yaml", ".yml"):
        return load_yaml_space(name_or_path)
    raise unknown_name("space", name_or_path, list(SPACES) + ["FILE.yaml"], SpaceError)


__all__ = ["SPACES", "FactorizedSpace", "ProxyConfig", "StageBase", "make_space", "load_yaml_space",
           "space_from_dict"]
