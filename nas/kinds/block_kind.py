"""What a block kind is: every fact about one block type in one object.

A kind states which stage fields it uses (the others must keep their neutral value), its canonical
form for the dedupe key, its analytic cost (layer by layer, exactly as it builds), how it builds,
its block-string codes and its search-space operator. :mod:`nas.spec`, :mod:`nas.builder`,
:mod:`nas.counting`, :mod:`nas.blockstrings` and ``search_spaces.base.parse_op`` read the kind from
the registry (:data:`nas.kinds.BLOCKS`) and hold no per-kind code.

Block strings. The type-prefixed notation writes ``<prefix>_r.._k.._s..[_e..]_c..``; ``e`` is
required for kinds with an expansion and optional (and 1) for the others. The official notations
know a few kinds by a conv-type code (EfficientNetV2's ``c0`` MBConv, ``c1`` Fused-MBConv; the
EfficientNet notation knows MBConv only, as code 0): :attr:`BlockKind.official` maps each notation
the kind has a code in to that code. A kind without a code of its own may name
:attr:`BlockKind.official_alias`, a kind that builds the same layers at expansion 1, and is written
as that one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from nas.errors import SpecError

if TYPE_CHECKING:
    from torch import nn

    from nas.kinds.tally import Tally
    from nas.spec import StageSpec


class BlockKind:
    """Base class of a block kind; a subclass module registers one instance."""

    name: str = ""             # the spec's ``block`` value
    title: str = ""            # what papers call it, for messages
    prefix: str = ""           # typed block-string prefix (ir, er, ds, cn)
    op: str = ""               # search-space operator; ``<op>N`` sets the expansion where there is one
    has_expansion: bool = True
    has_se: bool = True
    has_group_size: bool = True
    official: Mapping[str, int] = {}
    official_alias: str | None = None

    def validate(self, stage: "StageSpec") -> None:
        """Refuse values in fields this kind does not have (``StageSpec`` checked their ranges)."""
        if not self.has_expansion and stage.expansion != 1:
            raise SpecError(f"stage.expansion: a {self.name} ({self.title}) block has expansion 1, "
                            f"got {stage.expansion}")
        if not self.has_se and stage.se_ratio != 0:
            raise SpecError(f"stage.se_ratio: a {self.name} block has no squeeze-excite; use 0")
        if not self.has_group_size and stage.group_size != 1:
            raise SpecError(f"stage.group_size: a {self.name} block has no grouped convolution; use 1, "
                            f"got {stage.group_size}")

    def canonical(self, stage: "StageSpec") -> str:
        """The kind whose name goes into the dedupe key: the same for kinds that build the same layers."""
        return self.name

    def cost(self, tally: "Tally", stage: "StageSpec", in_channels: int, stride: int, size: int) -> int:
        """Add one block to ``tally``, layer by layer as :meth:`build` makes it; return its output size."""
        raise NotImplementedError

    def build(self, stage: "StageSpec", in_channels: int, stride: int, drop_rate: float, norm: Any,
              activation: Any) -> "nn.Module":
        """One block of ``stage`` (torch is imported here, not at module level)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<block kind {self.name}>"


__all__ = ["BlockKind"]
