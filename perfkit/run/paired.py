"""Base and head in one run: splitting it into the two result files a journal compares.

``perfkit compare --base-source DIR`` measures each variant ``A`` twice in one interleaved engine run,
as ``A@base`` (from ``DIR``) and ``A`` (from this tree) — see :func:`perfkit.run.plan.paired_plan`.
:func:`split_run` turns that run into two ordinary runs, each as if it had been measured alone: the
base's with the tag removed from every label, the environment's git commit and source hashes read from
``DIR``; the head's with the head's variants only. ``perfkit journal --base … --head …`` reads them
like any other results. :func:`merge_runs` joins two runs of the same suite (the parity suite runs base
and head one after the other: it is not a timing) into the paired form first. :func:`base_failures`
says which base measurements could not be made while their head twin could (an old merge-base whose
worker does not understand this engine's requests, say).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..measure.environment import Environment
from ..store.records import CASE_OK, RUN_COMPLETE, RUN_INTERRUPTED, CaseRecord, Failure, Run
from .plan import BackendRef
from .source_tree import source_tree

BASE_TAG = "base"
_PARITY_KEY = "parity"  # perfkit.store.parity_records.SETTINGS_KEY, whose records carry labels too
#: Failure kinds that are not the base's fault: the variant cannot run here, the run was stopped.
_NOT_THE_BASE = ("unavailable", "interrupted")


@dataclass(frozen=True)
class Split:
    """The two halves of a paired run."""

    base: Run
    head: Run


def tagged(label: str, tag: str = BASE_TAG) -> bool:
    return label.endswith(f"@{tag}")


def untag(label: str, tag: str = BASE_TAG) -> str:
    return label.removesuffix(f"@{tag}")


def _settings(settings: Mapping[str, Any], keep: Any, relabel: Any) -> dict[str, Any]:
    out = dict(settings)
    if "variants" in out:
        out["variants"] = [_ref(v).untagged().to_dict() for v in out["variants"] if keep(_ref(v).label)]
    if isinstance(out.get(_PARITY_KEY), list):
        out[_PARITY_KEY] = [{**r, "variant": relabel(r["variant"])} for r in out[_PARITY_KEY]
                            if isinstance(r, Mapping) and keep(r.get("variant", ""))]
    return out


def _ref(v: Mapping[str, Any]) -> BackendRef:
    return BackendRef(v["spec"], v.get("target", ""), v.get("source", ""), v.get("tag", ""))


def base_environment(env: Environment, source: str, modules: Mapping[str, str]) -> Environment:
    """``env`` as the base tree has it: its git commit and dirty flag, its source hashes."""
    tree = source_tree(source)
    commit, dirty = tree.git_state()
    hashes = {label: tree.source_hash(module) for label, module in modules.items()}
    return replace(env, git_commit=commit, git_dirty=dirty, source_hashes=hashes)


def split_run(run: Run, source: str, modules: Mapping[str, str], tag: str = BASE_TAG) -> Split:
    """``run`` (with ``…@tag`` variants from ``source``) as a base run and a head run (module docstring).

    ``modules``: what the environment hashes (:func:`perfkit.run.engine.source_modules`). Run ids get
    ``-base`` / ``-head`` appended."""
    tree = source_tree(source)

    def base_case(c: CaseRecord) -> CaseRecord:
        module = dict(modules).get(f"backend:{c.backend}")
        return replace(c, variant=untag(c.variant, tag), source_hash=tree.source_hash(module) if module else None)

    def is_base(label: str) -> bool:
        return tagged(label, tag)

    def is_head(label: str) -> bool:
        return not tagged(label, tag)

    base = replace(run, run_id=f"{run.run_id}-{tag}",
                   cases=tuple(base_case(c) for c in run.cases if is_base(c.variant)),
                   settings=_settings(run.settings, is_base, lambda v: untag(v, tag)),
                   environment=base_environment(run.environment, source, modules))
    head = replace(run, run_id=f"{run.run_id}-head", cases=tuple(c for c in run.cases if is_head(c.variant)),
                   settings=_settings(run.settings, is_head, lambda v: v))
    return Split(base, head)


def merge_runs(base: Run, head: Run) -> Run:
    """Two runs of one suite (``base``'s variants already tagged) as one paired run: ``head``'s header,
    both runs' cases (case by case, base first) and labelled settings."""
    names = list(dict.fromkeys(c.case.name for c in (*head.cases, *base.cases)))
    cases = tuple(sorted((*base.cases, *head.cases), key=lambda c: (names.index(c.case.name),
                                                                     not tagged(c.variant))))
    settings = dict(head.settings)
    for key in ("variants", _PARITY_KEY):
        if isinstance(base.settings.get(key), list) or isinstance(head.settings.get(key), list):
            settings[key] = [*base.settings.get(key, []), *head.settings.get(key, [])]
    status = RUN_COMPLETE if base.status == head.status == RUN_COMPLETE else RUN_INTERRUPTED
    return replace(head, status=status, started_utc=min(base.started_utc, head.started_utc), cases=cases,
                   settings=settings)


def base_failures(runs: Sequence[Run], tag: str = BASE_TAG) -> list[tuple[str, str, str, Failure]]:
    """``(suite, variant, case, failure)`` for every base measurement that failed while the head's same
    variant and case succeeded — the base tree could not be measured by this engine. A parity mismatch
    is a result, not a failure to measure; an unavailable variant or an interrupted run is not the base's
    doing."""
    out = []
    for run in runs:
        head_ok = {(c.variant, c.case.name) for c in run.cases if not tagged(c.variant, tag) and c.status == CASE_OK}
        for c in run.cases:
            if not tagged(c.variant, tag) or (untag(c.variant, tag), c.case.name) not in head_ok:
                continue
            for f in c.failures:
                if f.kind not in _NOT_THE_BASE and not (f.phase == "parity" and f.message.startswith("parity: ")):
                    out.append((run.suite, untag(c.variant, tag), c.case.name, f))
                    break
    return out
