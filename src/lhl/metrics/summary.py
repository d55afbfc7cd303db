"""Summaries over results and performance matrices: eq. 11's relative improvement, mean rank,
forgetting and backward transfer (docs/deviations.md, "Metrics").

Pure-Python functions, no torch. Vocabulary:

* a **result** is ``dict[task, dict[metric, float]]`` — e.g. ``{"depth": {"abs_err": 0.6,
  "rel_err": 0.25}}``;
* ``higher_is_better`` has the same nesting with booleans, as each task declares it (a run records
  it in ``performance.json``'s ``"directions"``; :func:`directions_for` builds it from tasks);
  the sign ``σ`` of a metric is ``+1`` when higher is better, ``−1`` otherwise;
* a **performance matrix** is a list over phases of results, phase ``t``'s result holding every
  task seen so far (the ``"metrics"`` of ``performance.json``'s phases).

All improvements, forgetting and transfer values are relative and in **percent**.

**Undefined values.** A relative change with a zero denominator (a baseline or reference value of
0), or involving a value that is not finite, is undefined: it is ``float('nan')`` in every
per-metric and per-task output, and it is left out of every average (:func:`mean_defined`: the
mean over the defined values; ``nan`` when none is defined). No function raises for it. Test with
``math.isnan``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

__all__ = [
    "Result",
    "Directions",
    "relative_improvement",
    "task_relative_improvement",
    "metric_relative_improvement",
    "mean_rank",
    "ranked_tasks",
    "forgetting",
    "backward_transfer",
    "metric_forgetting",
    "metric_backward_transfer",
    "mean_defined",
    "final_result",
    "matrix_from_performance",
    "directions_for",
]

Result = Mapping[str, Mapping[str, float]]
Directions = Mapping[str, Mapping[str, bool]]

#: Improvements closer than this (absolute, in percent points) count as a tie in :func:`mean_rank`.
RANK_TIE_TOL = 1e-9

NAN = float("nan")


def _value(result: Result, task: str, metric: str, what: str = "result") -> float:
    if task not in result:
        raise KeyError(f"task {task!r} missing from {what} (has {sorted(result)})")
    metrics = result[task]
    if metric not in metrics:
        raise KeyError(
            f"metric {metric!r} of task {task!r} missing from {what} (has {sorted(metrics)})"
        )
    return float(metrics[metric])


def _sigma(higher_is_better: Directions, task: str, metric: str) -> float:
    if task not in higher_is_better or metric not in higher_is_better[task]:
        raise KeyError(f"no direction given for metric {metric!r} of task {task!r}")
    return 1.0 if bool(higher_is_better[task][metric]) else -1.0


class DeclaresDirections(Protocol):
    """Anything that declares its metrics' directions, as :class:`lhl.tasks.Task` does."""

    higher_is_better: Mapping[str, bool]


def directions_for(result: Result, tasks: Mapping[str, DeclaresDirections]) -> dict[str, dict[str, bool]]:
    """Directions of every metric of ``result``, as ``tasks`` (``{name: Task}``) declare them.

    Args:
        result: ``dict[task, dict[metric, float]]``.
        tasks: the task of every name in ``result``; its ``higher_is_better`` maps each of its
            metric keys to ``True`` where higher is better.

    Returns:
        ``dict[task, dict[metric, bool]]``, ``True`` where higher is better.

    Raises:
        KeyError: naming the task (and metric) when a task is not given or does not declare a
            metric of ``result``.
    """
    out: dict[str, dict[str, bool]] = {}
    for task, metrics in result.items():
        if task not in tasks:
            raise KeyError(f"no task {task!r} given: the directions of its metrics are not known")
        declared = tasks[task].higher_is_better
        out[task] = {}
        for metric in metrics:
            if metric not in declared:
                raise KeyError(
                    f"unknown metric {metric!r} of task {task!r}: the task declares no direction for it "
                    f"(it declares: {sorted(declared)})"
                )
            out[task][metric] = bool(declared[metric])
    return out


def _undefined(x: float) -> bool:
    return x != x  # NaN


def mean_defined(values: Iterable[float]) -> float:
    """Mean of the defined (non-NaN) values; ``nan`` when there is none.

    This is how every average of this module treats undefined relative changes.
    """
    kept = [float(v) for v in values if not _undefined(float(v))]
    return sum(kept) / len(kept) if kept else NAN


def _relative(change: float, denominator: float) -> float:
    """``change / denominator · 100``, or ``nan`` when the denominator is 0 or a value is not
    finite."""
    if denominator == 0 or not math.isfinite(denominator) or not math.isfinite(change):
        return NAN
    return change / denominator * 100.0


def metric_relative_improvement(
    result: Result, baseline: Result, higher_is_better: Directions
) -> dict[str, dict[str, float]]:
    """Per-metric relative improvement of ``result`` over ``baseline``, in percent.

    For every task ``i`` and metric ``j`` of ``baseline``::

        σ_ij (E^m_ij − E^v_ij) / E^v_ij · 100

    ``nan`` (undefined) where the baseline value ``E^v_ij`` is 0, or where either value is not
    finite.

    Returns:
        ``dict[task, dict[metric, float]]`` in ``baseline``'s order.

    Raises:
        KeyError: a task or metric of ``baseline`` is missing from ``result`` or from
            ``higher_is_better`` (the message names it).
    """
    out: dict[str, dict[str, float]] = {}
    for task, metrics in baseline.items():
        out[task] = {}
        for metric in metrics:
            ref = _value(baseline, task, metric, "baseline")
            val = _value(result, task, metric, "result")
            sigma = _sigma(higher_is_better, task, metric)
            out[task][metric] = _relative(sigma * (val - ref), ref)
    return out


def task_relative_improvement(
    result: Result, baseline: Result, higher_is_better: Directions
) -> dict[str, float]:
    """Per-task mean relative improvement of ``result`` over ``baseline`` (inner sum of eq. 11).

    For every task ``i`` of ``baseline`` with metrics ``j = 1 … M_i`` (those of ``baseline``)::

        Δ_i = (1 / M_i) Σ_j σ_ij (E^m_ij − E^v_ij) / E^v_ij · 100

    with ``σ = +1`` for higher-is-better metrics and ``−1`` otherwise — the standard reading of
    the paper's eq. 11 (docs/deviations.md: the paper's ``(−1)^{s_ij}`` literally inverts the
    sign).

    **Undefined values.** A metric whose relative change is undefined — its baseline value is 0,
    or a value is not finite (see :func:`metric_relative_improvement`) — is left out: ``Δ_i`` is
    the mean over the task's other metrics (``M_i`` counts only the defined ones). A task with no
    defined metric gets ``Δ_i = nan``. Nothing is raised for a zero baseline value.

    Args:
        result: the method's result ``E^m``.
        baseline: the reference result ``E^v`` (vanilla); defines the tasks and metrics used.
        higher_is_better: directions, same nesting.

    Returns:
        ``dict[task, float]`` in percent (``nan`` where undefined), in ``baseline``'s task order.

    Raises:
        KeyError: a task or metric of ``baseline`` is missing from ``result`` or from
            ``higher_is_better`` (the message names it).
        ValueError: a baseline task has no metric.
    """
    for task, metrics in baseline.items():
        if len(metrics) == 0:
            raise ValueError(f"baseline task {task!r} has no metric")
    per_metric = metric_relative_improvement(result, baseline, higher_is_better)
    return {task: mean_defined(values.values()) for task, values in per_metric.items()}


def relative_improvement(
    result: Result, baseline: Result, higher_is_better: Directions
) -> float:
    """Average relative improvement ``Δ`` of ``result`` over ``baseline`` (eq. 11), in percent.

    ``Δ = (1 / T) Σ_i Δ_i`` over the tasks of ``baseline`` whose ``Δ_i``
    (:func:`task_relative_improvement`) is defined; a task with ``Δ_i = nan`` is left out
    (``T`` counts the defined tasks only). ``nan`` when no task is defined. Positive means better
    than the baseline.

    Raises:
        KeyError: missing task / metric / direction (named in the message).
        ValueError: empty ``baseline`` or a task without metric.
    """
    if len(baseline) == 0:
        raise ValueError("baseline has no task")
    per_task = task_relative_improvement(result, baseline, higher_is_better)
    return mean_defined(per_task.values())


def mean_rank(
    results: Mapping[str, Result], higher_is_better: Directions, baseline: str = "vanilla"
) -> dict[str, float]:
    """Mean rank ``MR`` of each method of one table (docs/deviations.md, "Mean rank").

    For every task of ``results[baseline]``, the methods (the baseline included, whose improvement
    is 0) are ranked by that task's mean relative improvement over the baseline
    (:func:`task_relative_improvement`); rank 1 is the largest improvement. Ties get the minimum
    rank (improvements within :data:`RANK_TIE_TOL` percent points are ties, so that equal metric
    values never rank apart through rounding). ``MR`` = mean of the ranks over tasks.

    **Undefined values.** Only the tasks whose ``Δ_i`` is defined for *every* method are ranked;
    a task with ``Δ_i = nan`` for some method (e.g. every metric of the task is 0 in the baseline)
    is left out of every method's mean, so that all methods are ranked over the same tasks. When no
    task is left, every ``MR`` is ``nan``. See :func:`ranked_tasks` for the tasks used.

    Args:
        results: ``dict[method, result]``; must contain ``baseline``.
        higher_is_better: directions.
        baseline: the key of ``results`` that is the reference of the improvements.

    Returns:
        ``dict[method, float]`` in ``results``' order; lower is better.

    Raises:
        KeyError: ``baseline`` missing, or a method lacks a task / metric of the baseline.
    """
    improvements = _improvements(results, higher_is_better, baseline)
    tasks = _ranked_tasks(improvements, results[baseline])
    if not tasks:
        return {m: NAN for m in results}
    ranks: dict[str, float] = {m: 0.0 for m in results}
    for task in tasks:
        scores = {m: improvements[m][task] for m in results}
        for m, s in scores.items():
            better = sum(1 for o in scores.values() if o > s + RANK_TIE_TOL)
            ranks[m] += 1 + better
    return {m: r / len(tasks) for m, r in ranks.items()}


def ranked_tasks(
    results: Mapping[str, Result], higher_is_better: Directions, baseline: str = "vanilla"
) -> list[str]:
    """The tasks :func:`mean_rank` ranks: those of ``results[baseline]`` whose ``Δ_i`` is defined
    for every method (same arguments and errors as :func:`mean_rank`)."""
    improvements = _improvements(results, higher_is_better, baseline)
    return _ranked_tasks(improvements, results[baseline])


def _improvements(
    results: Mapping[str, Result], higher_is_better: Directions, baseline: str
) -> dict[str, dict[str, float]]:
    if baseline not in results:
        raise KeyError(
            f"mean_rank needs a {baseline!r} entry as the reference of the relative improvement; "
            f"got methods {list(results)}"
        )
    reference = results[baseline]
    if len(reference) == 0:
        raise ValueError(f"results[{baseline!r}] has no task")
    improvements: dict[str, dict[str, float]] = {}
    for method, result in results.items():
        try:
            improvements[method] = task_relative_improvement(result, reference, higher_is_better)
        except KeyError as err:
            raise KeyError(f"method {method!r}: {err.args[0]}") from None
    return improvements


def _ranked_tasks(improvements: Mapping[str, Mapping[str, float]], reference: Result) -> list[str]:
    return [t for t in reference if not any(_undefined(imp[t]) for imp in improvements.values())]


def _first_seen(matrix: Sequence[Result]) -> dict[str, int]:
    first: dict[str, int] = {}
    for t, result in enumerate(matrix):
        for task in result:
            first.setdefault(task, t)
    return first


def _per_metric_change(
    matrix: Sequence[Result],
    higher_is_better: Directions,
    reference: str,
) -> dict[str, dict[str, float]]:
    if len(matrix) == 0:
        raise ValueError("performance matrix is empty")
    last = len(matrix) - 1
    final = matrix[last]
    out: dict[str, dict[str, float]] = {}
    for task, t0 in _first_seen(matrix).items():
        if t0 == last:
            continue  # learned in the last phase: nothing to forget / transfer yet
        if task not in final:
            raise KeyError(f"task {task!r} (seen at phase index {t0}) missing from the last phase")
        metrics = final[task]
        if len(metrics) == 0:
            raise ValueError(f"task {task!r} has no metric in the last phase")
        out[task] = {}
        for metric in metrics:
            sigma = _sigma(higher_is_better, task, metric)
            end = _value(final, task, metric, f"phase index {last}")
            if reference == "best":
                earlier = [
                    _value(matrix[t], task, metric, f"phase index {t}")
                    for t in range(t0, last)
                    if task in matrix[t]
                ]
                earlier = [v for v in earlier if math.isfinite(v)]
                if not earlier:
                    out[task][metric] = NAN
                    continue
                ref = max(earlier) if sigma > 0 else min(earlier)
                change = sigma * (ref - end)  # > 0: forgot
            else:
                ref = _value(matrix[t0], task, metric, f"phase index {t0}")
                change = sigma * (end - ref)  # > 0: improved
            out[task][metric] = _relative(change, abs(ref))
    return out


def metric_forgetting(
    matrix: Sequence[Result], higher_is_better: Directions
) -> dict[str, dict[str, float]]:
    """Per-metric forgetting ``F_j`` of :func:`forgetting` (``nan`` where undefined).

    Returns:
        ``dict[task, dict[metric, float]]`` for the tasks first seen before the last phase.
    """
    return _per_metric_change(matrix, higher_is_better, "best")


def metric_backward_transfer(
    matrix: Sequence[Result], higher_is_better: Directions
) -> dict[str, dict[str, float]]:
    """Per-metric backward transfer ``BWT_j`` of :func:`backward_transfer` (``nan`` where
    undefined).

    Returns:
        ``dict[task, dict[metric, float]]`` for the tasks first seen before the last phase.
    """
    return _per_metric_change(matrix, higher_is_better, "first")


def forgetting(
    matrix: Sequence[Result], higher_is_better: Directions
) -> dict[str, float]:
    """Per-task forgetting at the end of the sequence, relative, in percent.

    For every task first seen before the last phase and every metric of it (those of the last
    phase)::

        F_j = σ · (best − final) / |best| · 100

    where ``best`` is the best value (max if higher-is-better, min otherwise) over the phases
    before the last in which the task was present, and ``final`` the last phase's value; then the
    mean over the task's metrics. Positive = forgot. The task first seen at the last phase is not
    included (a one-phase matrix gives ``{}``).

    **Undefined values.** ``F_j`` is undefined when ``best`` is 0 or a value is not finite
    (non-finite earlier values are skipped when looking for ``best``); such a metric is left out
    of the task's mean. A task with no defined metric gets ``nan``. Nothing is raised for a zero
    reference. :func:`metric_forgetting` gives the per-metric values.

    Args:
        matrix: list over phases of results (see module docstring).
        higher_is_better: directions.

    Returns:
        ``dict[task, float]`` in order of first appearance (``nan`` where undefined).
    """
    per_metric = metric_forgetting(matrix, higher_is_better)
    return {task: mean_defined(values.values()) for task, values in per_metric.items()}


def backward_transfer(
    matrix: Sequence[Result], higher_is_better: Directions
) -> dict[str, float]:
    """Per-task backward transfer, relative, in percent.

    For every task ``j`` first seen at phase ``j`` before the last phase ``T`` and every metric::

        BWT_j = σ · (E_{T,j} − E_{j,j}) / |E_{j,j}| · 100

    (final value versus the value just after learning the task), then the mean over metrics.
    Positive = the task improved after it was learned (negative = forgetting).

    **Undefined values.** ``BWT_j`` is undefined when ``E_{j,j}`` is 0 or a value is not finite;
    such a metric is left out of the task's mean, and a task with no defined metric gets ``nan``.
    Nothing is raised for a zero reference. :func:`metric_backward_transfer` gives the per-metric
    values.

    Returns:
        ``dict[task, float]`` in order of first appearance (``nan`` where undefined).
    """
    per_metric = metric_backward_transfer(matrix, higher_is_better)
    return {task: mean_defined(values.values()) for task, values in per_metric.items()}


def _phases(performance: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    if "phases" not in performance:
        raise KeyError("performance dict has no 'phases' (is it a performance.json?)")
    phases = list(performance["phases"])
    if len(phases) == 0:
        raise ValueError("performance dict has no phase")
    for i, ph in enumerate(phases):
        if "metrics" not in ph:
            raise KeyError(f"phase entry {i} of performance dict has no 'metrics'")
    if all("phase" in ph for ph in phases):
        phases.sort(key=lambda ph: ph["phase"])
    return phases


def _copy_result(metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    return {
        task: {m: (v if isinstance(v, bool) else float(v)) for m, v in vals.items()}
        for task, vals in metrics.items()
    }


def matrix_from_performance(performance: Mapping[str, Any]) -> list[dict[str, dict[str, float]]]:
    """The performance matrix of a ``performance.json`` dict (README, "Run directory").

    Returns:
        list over phases (ordered by their ``"phase"`` number) of each phase's ``"metrics"``
        (copies; values as floats).
    """
    return [_copy_result(ph["metrics"]) for ph in _phases(performance)]


def final_result(performance: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """The last phase's ``"metrics"`` of a ``performance.json`` dict (a copy) — the table row."""
    return _copy_result(_phases(performance)[-1]["metrics"])
