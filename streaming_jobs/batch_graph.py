"""A micro-batch declared as a graph of named steps, run by one small runner.

Each ``Step`` names the values it needs — the batch's inputs or the results of earlier steps,
handed to ``run`` as keyword arguments of those names —, the steps it merely follows
(``after``) and, optionally, the value that decides whether it runs at all (``when``).
``BatchGraph`` checks the declaration once (unique names, every name declared before it is
used, so there is no cycle) and runs a batch with every step on a thread of its own that
starts it as soon as what it waits for is done: the order and the parallelism follow from the
declaration. A step computes; what it writes it returns as a ``Write`` (a table and the rows
for it), which the graph hands to its writer — the steps that need the step's result get the
rows.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from time import monotonic

from lakehouse.io.delta_io import Write

Wrap = Callable[[Callable[[], object]], Callable[[], object]]
#: the result of a step that did not run: its ``when`` was false, or a step it needs did not run
SKIPPED = object()


@dataclass(frozen=True)
class Step:
    """``run(**{name: value for name in needs})`` once the steps of ``after`` have ended; not
    run when the value named ``when`` is false or a value it needs is ``SKIPPED``."""

    name: str
    run: Callable[..., object]
    needs: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    when: str | None = None


class BatchGraph:
    """Steps over a batch's ``inputs``; a batch's ``gate()`` is called as each of its steps
    starts (the gold query's steps wait there for a running silver batch). ``write`` writes
    what a step returns as a ``Write``, on the step's thread."""

    def __init__(
        self,
        inputs: Collection[str],
        steps: Sequence[Step],
        write: Callable[[Write], object] | None = None,
    ) -> None:
        declared = set(inputs)
        for step in steps:
            used = (*step.needs, *step.after, *([step.when] if step.when else []))
            if step.name in declared or any(n not in declared for n in used):
                raise ValueError(f"step {step.name!r}: repeated, or one of {used} undeclared")
            declared.add(step.name)
        self.inputs = frozenset(inputs)
        self.steps = tuple(steps)
        self.write = write

    def run(
        self,
        inputs: Mapping[str, object],
        inherit: Wrap = lambda target: target,
        gate: Callable[[], object] = lambda: None,
    ) -> dict[str, float]:
        """Run a batch; the seconds of each step that ran (they overlap). ``inherit`` wraps each
        step's thread target (``medallion.inherit_properties(spark)``: its Spark jobs go to the
        caller's scheduler pool); ``gate()`` is called as each step starts. Re-raises the first
        failure once every step has ended."""
        if missing := self.inputs - inputs.keys():
            raise ValueError(f"batch inputs missing: {sorted(missing)}")
        results: dict[str, object] = dict(inputs)
        seconds: dict[str, float] = {}
        with ThreadPoolExecutor(max_workers=len(self.steps)) as pool:
            for step in self.steps:
                task = partial(self._step, step, results, seconds, gate)
                results[step.name] = pool.submit(inherit(task))
            for step in self.steps:
                results[step.name].result()  # type: ignore[union-attr]
        return seconds

    def _step(
        self,
        step: Step,
        results: Mapping[str, object],
        seconds: dict[str, float],
        gate: Callable[[], object],
    ) -> object:
        for name in step.after:
            _value(results[name])
        values = {n: _value(results[n]) for n in step.needs}
        wanted = _value(results[step.when]) if step.when else True
        if wanted is SKIPPED or not wanted or any(v is SKIPPED for v in values.values()):
            return SKIPPED
        gate()
        began = monotonic()
        try:
            result = step.run(**values)
            if isinstance(result, Write):
                if self.write is None:
                    raise ValueError(
                        f"step {step.name!r} returned a Write; the graph has no writer"
                    )
                self.write(result)
                return result.rows
            return result
        finally:
            seconds[step.name] = round(monotonic() - began, 3)


def _value(result: object) -> object:
    """A step's result (waiting for it) or an input."""
    return result.result() if isinstance(result, Future) else result
