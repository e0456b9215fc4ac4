"""Importing pytest-benchmark JSON (``--benchmark-json``) as a perfkit run.

The suites also run under pytest through pytest-benchmark (``pytest suites/ --benchmark-only
--benchmark-json=FILE``); this module reads such a file — or any pytest-benchmark file — into a
:class:`~perfkit.store.records.Run`, so that journals, comparisons and the store treat it like any
other run. Mapping:

- each benchmark's ``extra_info`` may name ``variant`` (``numpy:dtype=float32``), ``suite``,
  ``preset``, ``case`` (a mapping of case parameters), ``series`` and ``stage`` — perfkit's own wrappers
  (``suites/test_benchmarks``) set them all; without them a benchmark is variant ``pytest``, preset
  ``pytest``, case parameter ``test`` = its test function, series = its name;
- benchmarks of one (variant, case) become one case; benchmarks of one series with the same number of
  samples become the stages of that series, others a series each;
- samples are ``stats.data`` (seconds per iteration, one per round: pytest-benchmark keeps them with
  ``--benchmark-save-data``; perfkit's wrappers turn it on) as integer nanoseconds; ``loops`` is
  ``stats.iterations``. Without raw data, the median stands in as a single sample and the run carries a
  warning (no verdict can be significant on one sample);
- ``extra_info.parity_passed == false`` marks the case failed in phase ``parity`` with
  ``extra_info.parity`` as the message, so its timings are flagged invalid like any parity failure;
  ``extra_info.parity_metrics`` (SNR, correlation, max abs diff, NMSE, failure, dtype, reference) become a
  parity record per (variant, case) in ``settings["parity"]`` (the ``e2e`` ``decode`` benchmark's
  metrics as the waveform), so journals print the parity line for imported runs too;
- one run per perfkit ``suite`` named in the benchmarks (``pytest-benchmark`` for the others); run ids
  come from the file's ``datetime``, the suite and a hash of the file's content: importing a file twice
  gives the same runs.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..interface import Variant
from ..measure.environment import Environment
from ..measure.parity import ParityResult, tolerance_for
from .files import safe_name
from .parity_records import ParityRecord, StageParity, decode_float
from .records import (
    CASE_FAILED,
    CASE_OK,
    RUN_COMPLETE,
    Case,
    CaseRecord,
    Failure,
    RecordError,
    Run,
    SeriesRecord,
    StageRecord,
)
from .schema import ResultFileError

SUITE = "pytest-benchmark"
_STAMP = re.compile(r"[^0-9]")


def is_pytest_benchmark(doc: Any) -> bool:
    """Whether a parsed JSON document looks like pytest-benchmark's output."""
    return isinstance(doc, dict) and isinstance(doc.get("benchmarks"), list) and "machine_info" in doc


def _stamp(when: str) -> tuple[str, str]:
    """``(run-id stamp, ISO UTC)`` from pytest-benchmark's ``datetime`` (naive UTC or with an offset)."""
    try:
        t = _dt.datetime.fromisoformat(when)
    except (TypeError, ValueError):
        return "00000000T000000Z", "1970-01-01T00:00:00+00:00"
    t = t.replace(tzinfo=_dt.UTC) if t.tzinfo is None else t.astimezone(_dt.UTC)
    return f"{t:%Y%m%dT%H%M%SZ}", t.isoformat(timespec="seconds")


def _environment(doc: Mapping[str, Any], captured: str) -> Environment:
    machine = doc.get("machine_info") or {}
    commit = doc.get("commit_info") or {}
    cpu = machine.get("cpu") if isinstance(machine.get("cpu"), dict) else {}
    commit_id = commit.get("id") if isinstance(commit.get("id"), str) else None
    commit_id = None if commit_id in ("", "unversioned") else commit_id
    dirty = commit.get("dirty") if isinstance(commit.get("dirty"), bool) else None

    def text(v: Any) -> str | None:
        return v if isinstance(v, str) and v else None

    return Environment(
        captured_utc=captured,
        hostname=text(machine.get("node")),
        platform=" ".join(x for x in (text(machine.get("system")), text(machine.get("release"))) if x) or None,
        cpu_model=text(cpu.get("brand_raw")) or text(machine.get("processor")),
        cpu_count_logical=cpu.get("count") if isinstance(cpu.get("count"), int) else None,
        python_version=text(machine.get("python_version")),
        python_implementation=text(machine.get("python_implementation")),
        packages={"pytest-benchmark": text(doc.get("version"))},
        git_commit=commit_id,
        git_dirty=dirty if commit_id else None,
    )


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and x == x and abs(x) != float("inf")


def _samples(stats: Mapping[str, Any], where: str) -> tuple[tuple[int, ...], bool]:
    data = stats.get("data")
    if isinstance(data, list) and data and all(_is_number(x) for x in data):
        return tuple(max(0, round(float(x) * 1e9)) for x in data), True
    median = stats.get("median")
    if _is_number(median):
        return (max(0, round(float(median) * 1e9)),), False
    raise ResultFileError(f"{where}: benchmark has neither stats.data nor stats.median")


def _param(value: Any) -> int | float | str:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return str(value)
    return value


def _case_key(bench: Mapping[str, Any], extra: Mapping[str, Any]) -> tuple[str, Case]:
    variant = extra.get("variant") if isinstance(extra.get("variant"), str) else "pytest"
    preset = extra.get("preset") if isinstance(extra.get("preset"), str) else "pytest"
    if isinstance(extra.get("case"), Mapping):
        params = tuple((str(k), _param(v)) for k, v in extra["case"].items())
    else:
        test = str(bench.get("fullname") or bench.get("name") or "benchmark").split("[", 1)[0]
        params = (("test", test),)
    return variant, Case(preset, params)


@dataclass(frozen=True)
class _Bench:
    suite: str
    key: tuple[str, Case]
    series: str
    stage: str
    samples: tuple[int, ...]
    loops: int
    parity_failure: str | None
    parity_metrics: Mapping[str, Any] | None


def _benches(doc: Mapping[str, Any], where: str) -> tuple[list[_Bench], list[str]]:
    out: list[_Bench] = []
    warnings: list[str] = []
    for i, bench in enumerate(doc["benchmarks"]):
        w = f"{where}: benchmarks[{i}]"
        if not isinstance(bench, Mapping) or not isinstance(bench.get("stats"), Mapping):
            raise ResultFileError(f"{w}: not a benchmark object with stats")
        extra = bench.get("extra_info") if isinstance(bench.get("extra_info"), Mapping) else {}
        name = str(bench.get("name") or f"benchmark_{i}")
        samples, raw = _samples(bench["stats"], w)
        if not raw:
            warnings.append(
                f"{name}: no raw samples in the file (run pytest with --benchmark-save-data); "
                "the median stands in as one sample"
            )
        iterations = bench["stats"].get("iterations", 1)
        failure = str(extra.get("parity") or "parity check failed") if extra.get("parity_passed") is False else None
        metrics = extra.get("parity_metrics") if isinstance(extra.get("parity_metrics"), Mapping) else None
        out.append(
            _Bench(
                str(extra.get("suite") or SUITE),
                _case_key(bench, extra),
                str(extra.get("series") or name),
                str(extra.get("stage") or name),
                samples,
                iterations if isinstance(iterations, int) and iterations > 0 else 1,
                failure,
                metrics,
            )
        )
    return out, warnings


def _series_records(stages: list[_Bench], name: str) -> list[SeriesRecord]:
    """One series when its stages are distinct and equally sampled, else one series per benchmark."""
    counts = {len(b.samples) for b in stages}
    names = [b.stage for b in stages]
    if len(counts) == 1 and len(set(names)) == len(names):
        n = counts.pop()
        return [
            SeriesRecord(
                name,
                name != "e2e",
                stages[0].loops,
                tuple(range(n)),
                tuple(StageRecord(b.stage, b.samples) for b in stages),
            )
        ]
    return [
        SeriesRecord(
            f"{name}:{b.stage}", False, b.loops, tuple(range(len(b.samples))), (StageRecord(b.stage, b.samples),)
        )
        for b in stages
    ]


def runs_from_pytest_benchmark(doc: Mapping[str, Any], where: str = "pytest-benchmark") -> list[Run]:
    """The runs a pytest-benchmark document describes, one per perfkit suite named in its benchmarks
    (see the module docstring), in suite-name order."""
    if not is_pytest_benchmark(doc):
        raise ResultFileError(f"{where}: not a pytest-benchmark file (no 'benchmarks' / 'machine_info')")
    stamp, iso = _stamp(str(doc.get("datetime", "")))
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:6]
    benches, warnings = _benches(doc, where)
    runs = []
    for suite in sorted({b.suite for b in benches}):
        mine = [b for b in benches if b.suite == suite]
        groups: dict[tuple[str, Case], dict[str, list[_Bench]]] = {}
        for b in mine:
            groups.setdefault(b.key, {}).setdefault(b.series, []).append(b)
        cases: list[CaseRecord] = []
        records: list[ParityRecord] = []
        for (variant, case), by_series in groups.items():
            series = [r for name, stages in by_series.items() for r in _series_records(stages, name)]
            try:
                parsed = Variant.parse(variant)
            except InputError:
                parsed = Variant(variant)
            all_b = [b for stages in by_series.values() for b in stages]
            failure = next((b.parity_failure for b in all_b if b.parity_failure), None)
            cases.append(
                CaseRecord(
                    variant=variant,
                    backend=parsed.backend,
                    options=parsed.options,
                    case=case,
                    status=CASE_FAILED if failure else CASE_OK,
                    failures=(Failure("error", "parity", f"parity: {failure}"),) if failure else (),
                    series=tuple(series),
                )
            )
            items = [(b.series, b.stage, b.parity_metrics) for b in all_b if b.parity_metrics is not None]
            if items:
                records.append(_parity_record(variant, case, items, f"{where}: parity of {variant}"))
        settings: dict[str, Any] = {"imported_from": SUITE}
        if records:
            settings["parity"] = [r.to_dict() for r in records]
        runs.append(
            Run(
                run_id=f"{stamp}-{SUITE}-{safe_name(suite)}-{digest}",
                suite=suite,
                status=RUN_COMPLETE,
                started_utc=iso,
                finished_utc=iso,
                perfkit_version="",
                command=("pytest-benchmark", where),
                settings=settings,
                environment=_environment(doc, iso),
                warnings=tuple(dict.fromkeys(warnings)),
                cases=tuple(cases),
            )
        )
    return runs


def _parity_record(
    variant: str, case: Case, items: list[tuple[str, str, Mapping[str, Any]]], where: str
) -> ParityRecord:
    """A parity record from the benchmarks' ``parity_metrics``: stage benchmarks as stages, the
    end-to-end ``decode`` (or any ``e2e``) benchmark as the waveform."""
    stages: list[StageParity] = []
    waveform = None
    dtype, reference = "float32", "numpy:dtype=float64"
    for series, stage, m in items:
        dtype = str(m.get("dtype", dtype))
        reference = str(m.get("reference", reference))
        tol = tolerance_for(dtype)
        try:
            values = [
                decode_float(m.get(k, "nan"), f"{where}.{k}") for k in ("snr_db", "correlation", "max_abs_diff", "nmse")
            ]
        except RecordError as exc:
            raise ResultFileError(str(exc)) from None
        result = ParityResult(*values, failure=str(m.get("failure") or ""))
        sp = StageParity.of("waveform" if series == "e2e" else stage, result, tol)
        if series == "e2e":
            waveform = sp
        else:
            stages.append(sp)
    if waveform is None and stages:
        waveform = dataclasses.replace(stages[-1], stage="waveform")
    return ParityRecord(
        variant,
        case.name,
        case.preset,
        dtype,
        reference,
        tolerance_for(dtype),
        tuple(stages),
        waveform,
        None,
        "not checked by the pytest-benchmark wrappers",
    )
