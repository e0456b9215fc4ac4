"""How reports name things: stages as the seeds wrote them, verdicts, variants and cases.

Canonical names get their journal labels (``rvq_decode`` -> ``RVQ decode``, ``block_2`` ->
``Block 2``, its sub-stages indented ``  tconv`` / ``  resunits``); any other name is shown as it is,
escaped (it came from a result file).
"""

from __future__ import annotations

import re

from ..measure.verdict import Verdict
from .escape import md

_FIXED: dict[str, str] = {
    "rvq_decode": "RVQ decode",
    "pre_conv": "Pre-conv",
    "pre_transformer": "Pre-transformer",
    "decoder_in": "Decoder in",
    "final": "Final",
    "tokenize": "Tokenize",
    "prefill": "Prefill",
    "talker_step": "Talker step",
    "sampling": "Sampling",
    "code_predictor": "Code predictor",
    "vocoder": "Vocoder decode",
    "generate": "Generate",
    "decode": "Decode",
    "synthesize": "Synthesize",
}
_NUMBERED = re.compile(r"^(upsample|block)_(\d+)$")
_SUB = re.compile(r"^block_\d+\.(tconv|resunits)$")
INDENT = "  "


def stage_label(name: str) -> str:
    """The label of a stage, markdown-safe (see the module docstring)."""
    if name in _FIXED:
        return _FIXED[name]
    m = _NUMBERED.match(name)
    if m:
        return f"{m.group(1).capitalize()} {m.group(2)}"
    m = _SUB.match(name)
    if m:
        return INDENT + m.group(1)
    return md(name)


def plain_stage_label(name: str) -> str:
    """The label without indentation, for plots (sub-stages keep their block: ``block 2 tconv``)."""
    m = _SUB.match(name)
    if m:
        return name.replace("_", " ").replace(".", " ")
    return stage_label(name).strip() if name in _FIXED or _NUMBERED.match(name) else name


def fine_label(name: str) -> str:
    """Like :func:`stage_label`, but a sub-stage keeps its block (``Block 2 tconv``): for tables of fine
    stages only, where no block row precedes it."""
    m = _SUB.match(name)
    if m:
        return stage_label(name.split(".", 1)[0]) + " " + m.group(1)
    return stage_label(name)


def is_substage(name: str) -> bool:
    return bool(_SUB.match(name))


def verdict_cell(verdict: Verdict | str | None) -> str:
    """``**faster**`` / ``**slower**`` / ``no significant change``."""
    if verdict is None:
        return "-"
    v = Verdict(verdict)
    return f"**{v.value}**" if v is not Verdict.NO_CHANGE else v.value


def commit_label(commit: str | None, dirty: bool | None) -> str:
    if not commit:
        return "unknown commit"
    return commit[:10] + ("+dirty" if dirty else "")
