"""The result file format: its version, its history, and the migrations that upgrade older files.

A result file is one JSON object ``{"format": "perfkit.result", "schema_version": N, …}``. Reading
upgrades any older version step by step (``MIGRATIONS[n]`` turns version ``n`` into ``n + 1``) and
refuses, with a message saying so, a newer version (written by a newer perfkit) and anything whose
``format`` is not ``perfkit.result``. Files on disk are never rewritten by an upgrade.

History
-------

**1** (the engine's first draft): a flat list of rows, one per (backend, case, mode, stage)::

    {"format": "perfkit.result", "schema_version": 1, "id": RUN_ID, "suite": NAME, "created": ISO_UTC,
     "machine": {ENVIRONMENT}, "protocol": {…},
     "results": [{"backend": "numpy:dtype=float32", "case": {"preset": "tiny", "params": {…}},
                  "mode": "stages" | "coarse" | "e2e", "stage": "pre_conv", "loops": 1,
                  "samples_ms": [float, …], "first_call_ms": float | null, "load_ms": float | null}, …],
     "errors": [{"backend": …, "case": {…}, "message": "…"}]}

Times were float milliseconds; the interleaving order, threads, timer, memory and run status were not
recorded.

**2** (current): nested records, see :mod:`perfkit.store.records` — ``run`` fields at the top level
(``run_id``, ``status``, ``started_utc``/``finished_utc``, ``command``, ``settings``, ``environment``,
``warnings``, ``skipped``) and ``cases``: one per (variant, case) with ``status``, ``failures`` (kind,
phase, message, detail), ``device``, ``timer``, ``threads``, ``source_hash``, ``load_ns``,
``first_call_ns``, ``weight_bytes``, ``memory`` and ``series`` (``synced``, ``covers``, ``loops``,
``visits``; stages with integer ``wall_ns`` samples and ``first_call_ns``). Integer nanoseconds
replace float milliseconds.

Migration 1 -> 2: rows are grouped by (backend, case) into cases and by mode into series; ``samples_ms``
become ``round(ms * 1e6)`` ns; ``visits`` are ``0 … n-1`` (v1 did not record the order); a per-stage
series ``covers`` ``e2e`` when the case has one; ``errors`` become ``failed`` cases with an ``error``
failure of phase ``unknown``; the run is ``complete`` with ``started_utc = finished_utc = created``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import InputError

FORMAT = "perfkit.result"
SCHEMA_VERSION = 2


class ResultFileError(InputError):
    """A file that is not a readable perfkit result (corrupt, empty, foreign, or from a newer perfkit)."""


def _case_name(case: Mapping[str, Any]) -> str:
    params = case.get("params") or {}
    return "/".join([str(case.get("preset")), *(f"{k}={v}" for k, v in params.items())])


def _ns(ms: Any) -> int | None:
    return None if ms is None else round(float(ms) * 1e6)


def migrate_1_to_2(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Version 1 -> 2 (see the module docstring)."""
    cases: dict[tuple[str, str], dict[str, Any]] = {}

    def case_for(backend: str, case: Mapping[str, Any]) -> dict[str, Any]:
        key = (backend, _case_name(case))
        if key not in cases:
            name, _, rest = backend.partition(":")
            options = dict(item.split("=", 1) for item in rest.split(",") if "=" in item)
            cases[key] = {
                "variant": backend, "backend": name, "options": options,
                "case": {"name": key[1], "preset": case.get("preset"),
                         "params": dict(case.get("params") or {})},
                "status": "ok", "failures": [], "device": "cpu", "timer": None, "threads": {},
                "source_hash": None,
                "load_ns": None, "first_call_ns": None, "weight_bytes": None, "memory": None, "_modes": {},
            }
        return cases[key]

    for row in doc.get("results", []):
        c = case_for(row["backend"], row["case"])
        if c["load_ns"] is None:
            c["load_ns"] = _ns(row.get("load_ms"))
        mode = c["_modes"].setdefault(row["mode"], {"loops": int(row.get("loops", 1)), "stages": [],
                                                    "n": None})
        samples = [_ns(v) for v in row["samples_ms"]]
        mode["n"] = len(samples) if mode["n"] is None else mode["n"]
        mode["stages"].append({"name": row["stage"], "first_call_ns": _ns(row.get("first_call_ms")),
                               "wall_ns": samples})
    for err in doc.get("errors", []):
        c = case_for(err["backend"], err["case"])
        c["status"] = "failed"
        c["failures"].append({"kind": "error", "phase": "unknown", "message": str(err["message"]),
                              "detail": ""})
    out_cases = []
    for c in cases.values():
        modes = c.pop("_modes")
        c["series"] = [
            {"name": name, "synced": name != "e2e",
             "covers": "e2e" if name != "e2e" and "e2e" in modes else None,
             "loops": m["loops"], "visits": list(range(m["n"] or 0)), "stages": m["stages"]}
            for name, m in modes.items()
        ]
        e2e = modes.get("e2e")
        if e2e and e2e["stages"]:
            c["first_call_ns"] = e2e["stages"][0]["first_call_ns"]
        out_cases.append(c)
    return {
        "format": FORMAT, "schema_version": 2, "run_id": doc["id"], "suite": doc["suite"],
        "status": "complete",
        "started_utc": doc["created"], "finished_utc": doc["created"], "perfkit_version": "",
        "command": [], "protocol": dict(doc.get("protocol") or {}), "settings": {},
        "environment": dict(doc.get("machine") or {}), "warnings": [], "skipped": [], "cases": out_cases,
    }


#: ``MIGRATIONS[n]`` upgrades a version-``n`` document to version ``n + 1``.
MIGRATIONS: dict[int, Callable[[Mapping[str, Any]], dict[str, Any]]] = {1: migrate_1_to_2}


def check_header(doc: Any, where: str = "result") -> int:
    """The document's schema version; :class:`ResultFileError` if it is not a perfkit result we can read."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ResultFileError(f"{where}: not a perfkit result file (no \"format\": \"{FORMAT}\")")
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ResultFileError(f"{where}: schema_version {version!r} is not a positive integer")
    if version > SCHEMA_VERSION:
        raise ResultFileError(f"{where}: written with result schema {version}, newer than this perfkit reads "
                              f"(up to {SCHEMA_VERSION}); upgrade perfkit to read it")
    return version


def upgrade(doc: Any, where: str = "result") -> dict[str, Any]:
    """``doc`` brought to :data:`SCHEMA_VERSION` (a new dict; ``doc`` is not modified)."""
    version = check_header(doc, where)
    while version < SCHEMA_VERSION:
        try:
            doc = MIGRATIONS[version](doc)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ResultFileError(f"{where}: malformed schema {version} file "
                                  f"({type(exc).__name__}: {exc})") from None
        version += 1
    return dict(doc)
