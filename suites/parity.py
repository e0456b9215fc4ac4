"""``parity``: every fine stage of every backend against the float64 NumPy reference.

For each case (``preset``, ``frames``, ``seed``, ``gen_frames``) the reference
(``numpy:dtype=float64``) runs once in a process of its own and keeps its outputs in a temporary
file; then each variant runs, each in a fresh process (a crash, a hang past the timeout or an
exception fails that variant only), and is compared with it (:func:`perfkit.measure.parity.compare`):

- **vocoder**: the output of every fine stage (``rvq_decode`` … ``block_i.tconv``, ``block_i.resunits``
  … ``final``) on the same synthetic codes, each backend running its own chain (errors accumulate as
  they would in use), and the waveform of an end-to-end ``decode``;
- **generator** (where the backend has one; on by default for the ``tiny`` and ``small`` presets,
  ``gen_frames=0`` turns it off): greedy codes over ``gen_frames`` frames — the *agreement rate*
  (fraction of codes equal to the reference's) and the *first divergent frame* — and, under teacher
  forcing with the reference's codes, every logits row of every step.

Each output must reach the tolerance of the backend's compute dtype
(:data:`perfkit.measure.parity.TOLERANCES`: minimum SNR in dB and correlation); NaN, Inf, silence or a
wrong shape fail outright whatever the tolerance. Greedy agreement is reported, not judged: a low
precision may legitimately pick another code when two logits nearly tie.

The result is a perfkit result file of suite ``parity`` (:mod:`perfkit.store.parity_records`).
A variant that fails here has its timing rows marked invalid in every report
(:mod:`perfkit.report.validity`). Parity is not a timing: the engine does not run this suite's
workload; :meth:`ParitySuite.execute` does, with the engine's plan, observer and store.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from perfkit.errors import BackendUnavailable, InputError
from perfkit.interface import Backend, decode_to_host
from perfkit.measure.environment import preflight_warnings, source_hash
from perfkit.measure.parity import TOLERANCES, ParityResult, compare, tolerance_for
from perfkit.run.engine import Observer, RunOutcome, environment_for
from perfkit.run.plan import BackendRef, Plan
from perfkit.run.suite import CaseRequest, Suite, Workload
from perfkit.store.files import new_run_id, write_run
from perfkit.store.parity_records import (
    PARITY_SUITE,
    SETTINGS_KEY,
    GeneratorParity,
    ParityRecord,
    StageParity,
)
from perfkit.store.records import (
    CASE_FAILED,
    CASE_INTERRUPTED,
    CASE_OK,
    RUN_COMPLETE,
    RUN_INTERRUPTED,
    Case,
    CaseRecord,
    Failure,
    Run,
)

from ._models import LIGHT_GENERATORS, TEXTS, generator_preset_name, vocoder_preset_name

REFERENCE = "numpy:dtype=float64"
DEFAULT_FRAMES = 25
DEFAULT_GEN_FRAMES = 8
PARITY_TEXT = TEXTS["short"]
_PARAMS = ("gen_frames",)


# ----------------------------------------------------------------------------- the suite
class ParitySuite(Suite):
    name = PARITY_SUITE
    description = "every stage of every backend against the float64 NumPy reference (not timed)"
    #: Not measured by the timing engine: :meth:`execute` runs it.
    timed = False

    def cases(self, request: CaseRequest) -> list[Case]:
        vocoder_preset_name(request.preset)
        unknown = sorted(set(request.params) - set(_PARAMS))
        if unknown:
            raise InputError(f"suite 'parity' takes no parameter(s) {', '.join(unknown)} "
                             f"(parameters: {', '.join(_PARAMS)})")
        frames = request.frames or (DEFAULT_FRAMES,)
        if any(f <= 0 for f in frames):
            raise InputError(f"frames must be positive, got {', '.join(map(str, frames))}")
        default_gen = DEFAULT_GEN_FRAMES if _generator_name(request.preset) in LIGHT_GENERATORS else 0
        try:
            gen_frames = int(request.params.get("gen_frames", default_gen))
        except ValueError:
            raise InputError(f"gen_frames must be an integer, got {request.params['gen_frames']!r}") from None
        if gen_frames < 0:
            raise InputError(f"gen_frames must be >= 0, got {gen_frames}")
        seed = int(request.seed)
        return [Case(request.preset, (("frames", int(f)), ("seed", seed), ("gen_frames", gen_frames)))
                for f in dict.fromkeys(frames)]

    def load(self, backend: Backend, prepared: Any) -> Workload:
        raise InputError("the parity suite is not a timing suite: it runs through ParitySuite.execute "
                         "(perfkit compare --suite parity)")

    def execute(self, plan: Plan, results_dir: str | os.PathLike[str] | None, *,
                observer: Observer | None = None, command: Sequence[str] = ()) -> RunOutcome:
        """Check every variant of ``plan`` on every case; store one result file (see the module docstring)."""
        return run_parity(plan, results_dir, observer=observer, command=command)


def _generator_name(preset: str) -> str | None:
    try:
        return generator_preset_name(preset)
    except Exception:  # noqa: BLE001 - a vocoder-only preset has no generator
        return None


# ----------------------------------------------------------------------------- child processes
#: The jobs a child process can run (``python -m perfkit.suites.parity JOB ARGS.json REPLY.json``).
JOBS = ("reference", "variant")


def child_main(argv: Sequence[str]) -> int:
    """Run job ``argv[0]`` with the JSON argument list in ``argv[1]``; write the JSON reply to ``argv[2]``."""
    job, args_path, reply_path = argv
    args = json.loads(Path(args_path).read_text())
    try:
        result = {"reference": reference_job, "variant": variant_job}[job](*args)
        reply: dict[str, Any] = {"ok": True, "result": result}
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, whatever it is
        kind = ("unavailable" if isinstance(exc, BackendUnavailable)
                else "oom" if isinstance(exc, MemoryError) else "error")
        reply = {"ok": False, "kind": kind, "message": f"{type(exc).__name__}: {exc}",
                 "detail": traceback.format_exc()[-4000:]}
    tmp = Path(reply_path + ".tmp")
    tmp.write_text(json.dumps(reply))
    tmp.replace(reply_path)
    return 0


def _tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def in_subprocess(job: str, args: Sequence[Any], timeout_s: float, workdir: str) -> dict[str, Any]:
    """Job ``job`` (one of :data:`JOBS`) in a fresh Python process: ``{"ok": True, "result": …}`` or
    ``{"ok": False, "kind", "message", "detail"}`` for an exception, a crash (the exit status or the
    signal) or a timeout (the process is killed). The child's output goes to a log, whose tail is the
    detail of a crash; it runs in a session of its own, so a Ctrl-C at the terminal reaches only perfkit."""
    if job not in JOBS:
        raise ValueError(f"unknown parity job {job!r}")
    stem = Path(tempfile.mkstemp(prefix=f"{job}-", dir=workdir)[1])
    args_path, reply_path, log_path = (stem.with_suffix(s) for s in (".args.json", ".reply.json", ".log"))
    args_path.write_text(json.dumps(list(args)))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", __name__, job, str(args_path), str(reply_path)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            code = proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return {"ok": False, "kind": "timeout", "message": f"no answer within {timeout_s:g} s",
                    "detail": _tail(log_path)}
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    if reply_path.exists():
        return json.loads(reply_path.read_text())
    how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
    return {"ok": False, "kind": "crash", "message": f"the process died ({how})", "detail": _tail(log_path)}


# ----------------------------------------------------------------------------- what a child computes
def _vocoder_inputs(case: Case) -> tuple[Any, np.ndarray]:
    from perfkit.model.codes import synthetic_codes
    from perfkit.model.vocoder_config import vocoder_preset
    from perfkit.model.vocoder_model import VocoderModel

    seed = int(case.param("seed", 0))
    model = VocoderModel.synthetic(vocoder_preset(vocoder_preset_name(case.preset)), seed)
    return model, synthetic_codes(model.config, int(case.param("frames", DEFAULT_FRAMES)), seed)


def _stage_key(stage: str) -> str:
    return "stage__" + stage


def _generator_outputs(backend: Backend, case: Case, forced: np.ndarray | None
                       ) -> tuple[np.ndarray, np.ndarray] | None:
    """Greedy codes ``(G, F)`` and, with ``forced`` codes, the teacher-forced logits, concatenated (else
    the logits of the greedy run itself); ``None`` when the case has no generator check."""
    from perfkit.model.generator_model import GeneratorModel
    from perfkit.model.prompt import encode_prompt
    from perfkit.model.sampling import SamplingOptions
    from perfkit.model.text import load_tokenizer
    from perfkit.synthesis import run_frames

    frames = int(case.param("gen_frames", 0))
    name = _generator_name(case.preset)
    if frames <= 0 or name is None:
        return None
    from perfkit.model.generator_config import generator_preset

    model = GeneratorModel.synthetic(generator_preset(name), int(case.param("seed", 0)))
    runner = backend.load_generator(model)
    prompt = encode_prompt(model.config, load_tokenizer(model.config), PARITY_TEXT)
    options = SamplingOptions(greedy=True, fixed_frames=frames)

    def generate(forced_codes: np.ndarray | None) -> tuple[np.ndarray, list[Any]]:
        log: list[Any] = []
        session = runner.new_session(prompt, options, forced_codes=forced_codes, logits_log=log)
        logits = runner.prefill(session)
        for _ in run_frames(backend, runner, session, logits):
            pass
        backend.synchronize()
        codes = np.asarray(backend.to_host(runner.codes(session, 0, session.frame)), dtype=np.int64)
        return codes, log

    codes, _ = generate(None)
    _, log = generate(codes if forced is None else forced)
    # rows differ in length (group 0: the codec vocabulary; groups 1…: the code predictor's): concatenate
    rows = [np.asarray(backend.to_host(row), dtype=np.float64).ravel() for _, _, row in log]
    logits = np.concatenate(rows) if rows else np.zeros((0,))
    return codes, logits


def reference_job(case_d: dict[str, Any], out_path: str) -> dict[str, Any]:
    """In a child: the float64 reference's outputs for the case, saved to ``out_path`` (``.npz``)."""
    from perfkit import registry

    case = Case.from_dict(case_d)
    backend = registry.create(REFERENCE)
    model, codes = _vocoder_inputs(case)
    runner = backend.load_vocoder(model)
    outputs: dict[str, np.ndarray] = {}
    for stage, y in runner.trace(runner.upload_codes(codes)):
        outputs[_stage_key(stage)] = np.asarray(backend.to_host(y), dtype=np.float64)
    outputs["waveform"] = np.asarray(decode_to_host(backend, runner, codes), dtype=np.float64)
    gen = _generator_outputs(backend, case, None)
    if gen is not None:
        outputs["gen_codes"], outputs["gen_logits"] = gen
    np.savez(out_path, **outputs)
    return {"stages": list(runner.stages), "generator": gen is not None}


def _stage(stage: str, result: ParityResult, dtype: str) -> StageParity:
    return StageParity.of(stage, result, tolerance_for(dtype))


def _agreement(codes: np.ndarray, ref: np.ndarray) -> tuple[float, int | None]:
    """Fraction of equal codes over the reference's frames, and the first frame where any group differs."""
    frames = ref.shape[1]
    test = np.full(ref.shape, -1, dtype=np.int64)
    if codes.ndim == 2 and codes.shape[0] == ref.shape[0]:
        n = min(frames, codes.shape[1])
        test[:, :n] = codes[:, :n]
    equal = test == ref
    bad = np.flatnonzero(~equal.all(axis=0))
    return float(equal.mean()) if equal.size else 1.0, (int(bad[0]) if bad.size else None)


def variant_job(spec: str, target: str, case_d: dict[str, Any], ref_path: str) -> dict[str, Any]:
    """In a child: one variant against the saved reference; returns :meth:`ParityRecord.to_dict`."""
    from perfkit.run.worker import make_backend

    case = Case.from_dict(case_d)
    backend = make_backend(spec, target)
    dtype = backend.dtype_name
    tol = tolerance_for(dtype)
    ref = np.load(ref_path)
    model, codes = _vocoder_inputs(case)
    runner = backend.load_vocoder(model)
    stages: list[StageParity] = []
    for stage, y in runner.trace(runner.upload_codes(codes)):
        key = _stage_key(stage)
        if key not in ref.files:
            stages.append(StageParity(stage, np.nan, np.nan, np.nan, np.nan, "unknown stage", False))
            continue
        stages.append(_stage(stage, compare(backend.to_host(y), ref[key]), dtype))
    waveform = _stage("waveform", compare(decode_to_host(backend, runner, codes), ref["waveform"]), dtype)
    generator, note = None, ""
    if "gen_codes" in ref.files:
        try:
            got = _generator_outputs(backend, case, ref["gen_codes"])
        except BackendUnavailable as exc:
            got, note = None, str(exc)
        if got is not None:
            gen_codes, logits = got
            agreement, first = _agreement(gen_codes, ref["gen_codes"])
            generator = GeneratorParity(int(ref["gen_codes"].shape[1]), agreement, first,
                                        _stage("logits", compare(logits, ref["gen_logits"]), dtype))
    else:
        note = "not checked for this preset (gen_frames=0)"
    record = ParityRecord(backend.variant.label, case.name, case.preset, dtype, REFERENCE, tol, tuple(stages),
                          waveform, generator, note)
    return record.to_dict()


# ----------------------------------------------------------------------------- the run
def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def _error_record(ref: BackendRef, case: Case, message: str) -> ParityRecord:
    dtype = ref.variant.option_dict.get("dtype", "float32")
    return ParityRecord(ref.label, case.name, case.preset, dtype, REFERENCE, tolerance_for(dtype),
                        error=message)


def _case_record(ref: BackendRef, case: Case, record: ParityRecord | None, failure: Failure | None,
                 source: str | None, interrupted: bool = False) -> CaseRecord:
    variant = ref.variant
    if interrupted:
        status = CASE_INTERRUPTED
    elif failure is not None or record is None or not record.passed:
        status = CASE_FAILED
    else:
        status = CASE_OK
    if failure is None and record is not None and not record.passed:
        failure = Failure("error", "parity", f"parity: {record.first_failure}")
    return CaseRecord(variant=ref.label, backend=variant.backend, options=variant.options, case=case,
                      status=status, failures=(failure,) if failure else (), source_hash=source)


def _check(ref: BackendRef, case: Case, ref_reply: dict[str, Any], ref_path: str, timeout: float,
           workdir: str) -> tuple[ParityRecord, Failure | None]:
    """One variant on one case, in a child process; the record and, if it could not run, why."""
    if not ref_reply["ok"]:
        record = _error_record(ref, case, f"the reference failed: {ref_reply['message']}")
        return record, Failure(ref_reply["kind"], "reference", record.error, ref_reply.get("detail", ""))
    reply = in_subprocess("variant", (ref.spec, ref.target, case.to_dict(), ref_path), timeout, workdir)
    if reply["ok"]:
        return dataclasses.replace(ParityRecord.from_dict(reply["result"]), variant=ref.label), None
    return _error_record(ref, case, reply["message"]), Failure(reply["kind"], "parity", reply["message"],
                                                                 reply.get("detail", ""))


def run_parity(plan: Plan, results_dir: str | os.PathLike[str] | None, *, observer: Observer | None = None,
               command: Sequence[str] = ()) -> RunOutcome:
    """Check ``plan``'s variants on its cases; write one result file into ``results_dir`` (if not None)."""
    if not plan.variants:
        raise InputError("nothing to check: no backend variant can run here")
    obs = observer or Observer()
    started = _now()
    env = environment_for(plan)
    warnings = preflight_warnings(env, plan.settings.threads)
    obs.run_started(plan, warnings)
    timeout = plan.settings.timeout_s
    hashes = {ref.label: source_hash(ref.module) if ref.module else None for ref in plan.variants}
    records: list[ParityRecord] = []
    cases: list[CaseRecord] = []
    status = RUN_COMPLETE
    try:
        with tempfile.TemporaryDirectory(prefix="perfkit-parity-") as tmp:
            for i, case in enumerate(plan.cases):
                obs.case_started(case, [r.label for r in plan.variants])
                ref_path = str(Path(tmp) / f"reference-{i}.npz")
                ref_reply = in_subprocess("reference", (case.to_dict(), ref_path), timeout, tmp)
                for ref in plan.variants:
                    obs.variant_setup(case, ref.label)
                    record, failure = _check(ref, case, ref_reply, ref_path, timeout, tmp)
                    records.append(record)
                    cases.append(_case_record(ref, case, record, failure, hashes[ref.label]))
                    done = cases[-1]
                    obs.variant_done(case, ref.label, "ok" if done.ok else "failed",
                                     done.failures[0] if done.failures else None)
    except KeyboardInterrupt:
        status = RUN_INTERRUPTED
        obs.run_interrupted("SIGINT")
    run = Run(
        run_id=new_run_id(PARITY_SUITE, started), suite=PARITY_SUITE, status=status,
        started_utc=started.isoformat(timespec="seconds"), finished_utc=_now().isoformat(timespec="seconds"),
        perfkit_version=env.packages.get("perfkit") or "", command=tuple(command), protocol={},
        settings={
            **plan.settings.to_dict(), "variants": [r.to_dict() for r in plan.variants],
            "reference": REFERENCE,
            "tolerances": {k: dataclasses.asdict(v) for k, v in TOLERANCES.items()},
            SETTINGS_KEY: [r.to_dict() for r in records],
        },
        environment=env, warnings=tuple(warnings), skipped=plan.skipped, cases=tuple(cases),
    )
    path = write_run(run, results_dir) if results_dir is not None else None
    if path is not None and path.stem != run.run_id:
        run = dataclasses.replace(run, run_id=path.stem)
    return RunOutcome(run, path)


SUITE = ParitySuite()


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
