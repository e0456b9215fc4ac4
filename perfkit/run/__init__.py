"""Running plans: suites, the plan, isolated worker processes, the engine.

Programmatic use::

    from perfkit.run import CaseRequest, make_plan, run_plan
    plan = make_plan("stages", ["numpy", "numpy:dtype=float64"], CaseRequest("tiny", frames=(25,)))
    outcome = run_plan(plan, "results")        # -> RunOutcome(run, path)
"""

from .engine import Interrupted, Observer, RunOutcome, run_plan
from .plan import BackendRef, Plan, WorkerSettings, make_plan
from .suite import CaseRequest, Series, Suite, Workload, get_suite, suite_names

__all__ = [
    "BackendRef", "CaseRequest", "Interrupted", "Observer", "Plan", "RunOutcome", "Series", "Suite",
    "WorkerSettings", "Workload", "get_suite", "make_plan", "run_plan", "suite_names",
]
