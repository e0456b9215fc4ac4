"""The timing suites (generator, rtf, streaming, memory): their cases, and one pass of each workload in
this process, timing exactly the spans each series declares (what the engine's worker checks)."""

from __future__ import annotations

import pytest
from perfkit.suites._models import TEXTS, word_count

from perfkit import registry
from perfkit.errors import ConfigError, InputError
from perfkit.measure.timers import CpuTimer
from perfkit.run.suite import CaseRequest, get_suite, suite_names


def one_pass_each(suite_name: str, request: CaseRequest, case_index: int = 0) -> dict[str, dict[str, int]]:
    """Prepare, load and run one pass of every series of one case on the NumPy backend."""
    suite = get_suite(suite_name)
    case = suite.cases(request)[case_index]
    workload = suite.load(registry.create("numpy"), suite.prepare(case))
    assert workload.weight_bytes and workload.weight_bytes > 0
    timer = CpuTimer()
    out = {}
    for series in workload.series:
        workload.run(series.name, timer)
        spans = timer.read()
        assert tuple(spans) == series.spans, f"{suite_name}/{series.name} timed {list(spans)}"
        assert all(ns >= 0 for ns in spans.values())
        out[series.name] = spans
    return out


def test_my_suites_are_installed() -> None:
    assert {"parity", "generator", "rtf", "streaming", "memory"} <= set(suite_names())


def test_texts_have_the_journal_lengths() -> None:
    assert {k: word_count(v) for k, v in TEXTS.items()} == {"short": 13, "medium": 53, "long": 115}


def test_generator_stages_pass() -> None:
    spans = one_pass_each("generator", CaseRequest("tiny", frames=(3,)))
    assert list(spans["stages"]) == ["tokenize", "prefill", "talker_step", "sampling", "code_predictor", "vocoder"]
    assert list(spans["e2e"]) == ["synthesize"]


def test_rtf_cases_follow_the_texts() -> None:
    suite = get_suite("rtf")
    cases = suite.cases(CaseRequest("tiny", params={"frames_per_word": "0.5"}))
    assert [(c.param("text"), c.param("words"), c.param("frames")) for c in cases] == [
        ("short", 13, 6), ("medium", 53, 26), ("long", 115, 58)]
    fixed = suite.cases(CaseRequest("tiny", frames=(10, 20), params={"text": "long"}))
    assert [(c.param("text"), c.param("frames")) for c in fixed] == [("long", 10), ("long", 20)]
    assert suite.cases(CaseRequest("tiny", params={"texts": "short,long"}))[1].param("text") == "long"
    for bad in ({"texts": "huge"}, {"frames_per_word": "0"}, {"beam": "2"}):
        with pytest.raises(InputError):
            suite.cases(CaseRequest("tiny", params=bad))
    with pytest.raises(ConfigError):
        suite.cases(CaseRequest("no-such-preset"))


def test_rtf_phases_pass() -> None:
    spans = one_pass_each("rtf", CaseRequest("tiny", frames=(2,), params={"text": "short"}))
    assert list(spans["phases"]) == ["tokenize", "prefill", "generate", "vocoder"]


def test_rtf_batch_sweep_cases() -> None:
    suite = get_suite("rtf")
    cases = suite.cases(CaseRequest("tiny", frames=(10, 20), params={"batch": "1,4,2,4"}))
    assert [(c.param("frames"), c.param("batch", 1)) for c in cases] == [
        (10, 1), (10, 4), (10, 2), (20, 1), (20, 4), (20, 2)]
    # batch 1 keeps the names of runs made before the sweep existed
    assert cases[0].name == "tiny/text=medium/words=53/frames=10/seed=0"
    assert cases[1].name == "tiny/text=medium/words=53/frames=10/seed=0/batch=4"
    assert [c.param("batch", 1) for c in suite.cases(CaseRequest("tiny", params={"texts": "short"}))] == [1]


@pytest.mark.parametrize("bad", ["0", "-1", "1.5", "two", "2,,4", "", "1,0"])
def test_rtf_rejects_bad_batch_sizes(bad: str) -> None:
    with pytest.raises(InputError, match="batch must be positive integers"):
        get_suite("rtf").cases(CaseRequest("tiny", params={"batch": bad}))


@pytest.mark.parametrize(("spec", "mode"), [("numpy", "native"), ("torch", "looped")])
def test_rtf_batch_pass_makes_every_item(spec: str, mode: str) -> None:
    if spec == "torch":
        pytest.importorskip("torch")
    suite = get_suite("rtf")
    case = suite.cases(CaseRequest("tiny", frames=(3,), params={"text": "short", "batch": "3"}))[0]
    workload = suite.load(registry.create(spec), suite.prepare(case))
    assert workload.metadata() == {"batch": 3, "batch_mode": mode}
    calls: list[int] = []
    decode = workload.passes.synth.vocoder
    original = decode.decode

    def counting(codes, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(int(codes.shape[1]))
        return original(codes, *args, **kwargs)

    decode.decode = counting  # type: ignore[method-assign]
    timer = CpuTimer()
    workload.run("phases", timer)
    assert list(timer.read()) == ["tokenize", "prefill", "generate", "vocoder"]
    assert calls == [3, 3, 3]  # three items of three frames, decoded one after another


@pytest.mark.parametrize(("chunk", "chunks"), [(1, 4), (3, 2), (4, 1)])
def test_streaming_pass_times_every_chunk(chunk: int, chunks: int) -> None:
    spans = one_pass_each("streaming", CaseRequest("tiny", frames=(4,), params={"chunks": str(chunk)}))
    assert list(spans["stream"]) == [f"chunk_{i:02d}" for i in range(chunks)]


def test_streaming_cases() -> None:
    cases = get_suite("streaming").cases(CaseRequest("tiny"))
    assert [c.param("chunk_frames") for c in cases] == [1, 2, 4, 8, 12]
    assert {c.param("frames") for c in cases} == {24}
    with pytest.raises(InputError):
        get_suite("streaming").cases(CaseRequest("tiny", params={"chunks": "1,x"}))


@pytest.mark.parametrize("config", ["vocoder", "stream", "tts"])
def test_memory_configurations_pass(config: str) -> None:
    spans = one_pass_each("memory", CaseRequest("tiny", frames=(14,), params={"configs": config}))
    assert len(spans) == 1 and len(next(iter(spans.values()))) == 1


def test_memory_suite_asks_for_the_memory_pass() -> None:
    suite = get_suite("memory")
    assert suite.memory is True and suite.protocol.max_samples == 1
    cases = suite.cases(CaseRequest("tiny"))
    assert [(c.param("config"), c.param("frames")) for c in cases] == [
        ("vocoder", 25), ("vocoder", 100), ("stream", 25), ("stream", 100), ("tts", 25), ("tts", 100)]
    with pytest.raises(InputError):
        suite.cases(CaseRequest("tiny", params={"configs": "gpu"}))


def test_a_batch_run_records_how_each_variant_batched(tmp_path):
    """Through the engine: NumPy batches natively, torch loops, and the stored run says so."""
    from perfkit.measure.protocol import Protocol
    from perfkit.run import WorkerSettings, make_plan, run_plan

    protocol = Protocol(warmup_rounds=0, min_samples=1, max_samples=1, round_samples=1, budget_s=1)
    request = CaseRequest("tiny", params={"texts": "short", "frames_per_word": "0.2", "batch": "2"})
    plan = make_plan("rtf", ["numpy", "torch"], request, protocol=protocol,
                     settings=WorkerSettings(timeout_s=300, threads=1))
    cases = {c.backend: c for c in run_plan(plan, tmp_path).run.cases}
    assert {b: (c.status, dict(c.metadata)) for b, c in cases.items()} == {
        "numpy": ("ok", {"batch": 2, "batch_mode": "native"}),
        "torch": ("ok", {"batch": 2, "batch_mode": "looped"}),
    }
