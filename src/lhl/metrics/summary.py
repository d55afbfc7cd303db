"""Summaries over results and performance matrices (SPEC §5, performance.json in §9).

Pure-Python functions, no torch. Vocabulary:

* a **result** is ``dict[task, dict[metric, float]]`` — e.g. ``{"depth": {"abs_err": 0.6,
  "rel_err": 0.25}}``;
* ``higher_is_better`` has the same nesting with booleans (build it with :func:`directions_for`);
  the sign ``σ`` of a metric is ``+1`` when higher is better, ``−1`` otherwise;
* a **performance matrix** is a list over phases of results, phase ``t``'s result holding every
  task seen so far (the ``"metrics"`` of ``performance.json``'s phases).

All improvements, forgetting and transfer values are relative and in **percent**.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lhl.metrics.dense import HIGHER_IS_BETTER

__all__ = [
    "Result",
    "Directions",
    "relative_improvement",
    "task_relative_improvement",
    "mean_rank",
    "forgetting",
    "backward_transfer",
    "final_result",
    "matrix_from_performance",
    "directions_for",
]

Result = Mapping[str, Mapping[str, float]]
Directions = Mapping[str, Mapping[str, bool]]

#: Improvements closer than this (absolute, in percent points) count as a tie in :func:`mean_rank`.
RANK_TIE_TOL = 1e-9


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


def directions_for(result: Result) -> dict[str, dict[str, bool]]:
    """Directions of every metric of ``result``, from :data:`~lhl.metrics.dense.HIGHER_IS_BETTER`.

    Args:
        result: ``dict[task, dict[metric, float]]``.

    Returns:
        ``dict[task, dict[metric, bool]]``, ``True`` where higher is better.

    Raises:
        KeyError: naming the task and metric when a metric key is unknown.
    """
    out: dict[str, dict[str, bool]] = {}
    for task, metrics in result.items():
        out[task] = {}
        for metric in metrics:
            if metric not in HIGHER_IS_BETTER:
                raise KeyError(
                    f"unknown metric {metric!r} of task {task!r}: its direction is not known "
                    f"(known: {sorted(HIGHER_IS_BETTER)})"
                )
            out[task][metric] = HIGHER_IS_BETTER[metric]
    return out


def task_relative_improvement(
    result: Result, baseline: Result, higher_is_better: Directions
) -> dict[str, float]:
    """Per-task mean relative improvement of ``result`` over ``baseline`` (inner sum of eq. 11).

    For every task ``i`` of ``baseline`` with metrics ``j = 1 … M_i`` (those of ``baseline``)::

        Δ_i = (1 / M_i) Σ_j σ_ij (E^m_ij − E^v_ij) / E^v_ij · 100

    with ``σ = +1`` for higher-is-better metrics and ``−1`` otherwise — the standard reading of
    the paper's eq. 11 (SPEC §5, §10: the paper's ``(−1)^{s_ij}`` literally inverts the sign).

    Args:
        result: the method's result ``E^m``.
        baseline: the reference result ``E^v`` (vanilla); defines the tasks and metrics used.
        higher_is_better: directions, same nesting.

    Returns:
        ``dict[task, float]`` in percent, in ``baseline``'s task order.

    Raises:
        KeyError: a task or metric of ``baseline`` is missing from ``result`` or from
            ``higher_is_better`` (the message names it).
        ValueError: a baseline task has no metric, or a baseline value is 0.
    """
    out: dict[str, float] = {}
    for task, metrics in baseline.items():
        if len(metrics) == 0:
            raise ValueError(f"baseline task {task!r} has no metric")
        total = 0.0
        for metric in metrics:
            ref = _value(baseline, task, metric, "baseline")
            val = _value(result, task, metric, "result")
            sigma = _sigma(higher_is_better, task, metric)
            if ref == 0:
                raise ValueError(
                    f"baseline value of metric {metric!r} of task {task!r} is 0: relative "
                    f"improvement undefined"
                )
            total += sigma * (val - ref) / ref * 100.0
        out[task] = total / len(metrics)
    return out


def relative_improvement(
    result: Result, baseline: Result, higher_is_better: Directions
) -> float:
    """Average relative improvement ``Δ`` of ``result`` over ``baseline`` (eq. 11), in percent.

    ``Δ = (1 / T) Σ_i Δ_i`` over the ``T`` tasks of ``baseline``, with ``Δ_i`` from
    :func:`task_relative_improvement`. Positive means better than the baseline.

    Raises:
        KeyError: missing task / metric / direction (named in the message).
        ValueError: empty ``baseline``, a task without metric, or a zero baseline value.
    """
    if len(baseline) == 0:
        raise ValueError("baseline has no task")
    per_task = task_relative_improvement(result, baseline, higher_is_better)
    return sum(per_task.values()) / len(per_task)


def mean_rank(
    results: Mapping[str, Result], higher_is_better: Directions
) -> dict[str, float]:
    """Mean rank ``MR`` of each method of one table (SPEC §5).

    For every task of ``results["vanilla"]``, the methods (vanilla included, whose improvement is
    0) are ranked by that task's mean relative improvement over vanilla
    (:func:`task_relative_improvement`); rank 1 is the largest improvement. Ties get the minimum
    rank (improvements within :data:`RANK_TIE_TOL` percent points are ties, so that equal metric
    values never rank apart through rounding). ``MR`` = mean of the ranks over tasks.

    Args:
        results: ``dict[method, result]``; must contain ``"vanilla"``.
        higher_is_better: directions.

    Returns:
        ``dict[method, float]`` in ``results``' order; lower is better.

    Raises:
        KeyError: ``"vanilla"`` missing, or a method lacks a task / metric of vanilla.
    """
    if "vanilla" not in results:
        raise KeyError(
            f"mean_rank needs a 'vanilla' entry as the reference of the relative improvement; "
            f"got methods {list(results)}"
        )
    baseline = results["vanilla"]
    if len(baseline) == 0:
        raise ValueError("results['vanilla'] has no task")
    improvements: dict[str, dict[str, float]] = {}
    for method, result in results.items():
        try:
            improvements[method] = task_relative_improvement(result, baseline, higher_is_better)
        except KeyError as err:
            raise KeyError(f"method {method!r}: {err.args[0]}") from None
    ranks: dict[str, float] = {m: 0.0 for m in results}
    for task in baseline:
        scores = {m: improvements[m][task] for m in results}
        for m, s in scores.items():
            better = sum(1 for o in scores.values() if o > s + RANK_TIE_TOL)
            ranks[m] += 1 + better
    return {m: r / len(baseline) for m, r in ranks.items()}


def _first_seen(matrix: Sequence[Result]) -> dict[str, int]:
    first: dict[str, int] = {}
    for t, result in enumerate(matrix):
        for task in result:
            first.setdefault(task, t)
    return first


def _per_task_change(
    matrix: Sequence[Result],
    higher_is_better: Directions,
    reference: str,
) -> dict[str, float]:
    if len(matrix) == 0:
        raise ValueError("performance matrix is empty")
    last = len(matrix) - 1
    final = matrix[last]
    out: dict[str, float] = {}
    for task, t0 in _first_seen(matrix).items():
        if t0 == last:
            continue  # learned in the last phase: nothing to forget / transfer yet
        if task not in final:
            raise KeyError(f"task {task!r} (seen at phase index {t0}) missing from the last phase")
        metrics = final[task]
        if len(metrics) == 0:
            raise ValueError(f"task {task!r} has no metric in the last phase")
        total = 0.0
        for metric in metrics:
            sigma = _sigma(higher_is_better, task, metric)
            end = _value(final, task, metric, f"phase index {last}")
            if reference == "best":
                earlier = [
                    _value(matrix[t], task, metric, f"phase index {t}")
                    for t in range(t0, last)
                    if task in matrix[t]
                ]
                ref = max(earlier) if sigma > 0 else min(earlier)
                change = sigma * (ref - end)  # > 0: forgot
            else:
                ref = _value(matrix[t0], task, metric, f"phase index {t0}")
                change = sigma * (end - ref)  # > 0: improved
            if ref == 0:
                raise ValueError(
                    f"reference value of metric {metric!r} of task {task!r} is 0: relative "
                    f"change undefined"
                )
            total += change / abs(ref) * 100.0
        out[task] = total / len(metrics)
    return out


def forgetting(
    matrix: Sequence[Result], higher_is_better: Directions
) -> dict[str, float]:
    """Per-task forgetting at the end of the sequence, relative, in percent (SPEC §5).

    For every task first seen before the last phase and every metric of it (those of the last
    phase)::

        F_j = σ · (best − final) / |best| · 100

    where ``best`` is the best value (max if higher-is-better, min otherwise) over the phases
    before the last in which the task was present, and ``final`` the last phase's value; then the
    mean over the task's metrics. Positive = forgot. The task first seen at the last phase is not
    included (a one-phase matrix gives ``{}``).

    Args:
        matrix: list over phases of results (see module docstring).
        higher_is_better: directions.

    Returns:
        ``dict[task, float]`` in order of first appearance.
    """
    return _per_task_change(matrix, higher_is_better, "best")


def backward_transfer(
    matrix: Sequence[Result], higher_is_better: Directions
) -> dict[str, float]:
    """Per-task backward transfer, relative, in percent (SPEC §5).

    For every task ``j`` first seen at phase ``j`` before the last phase ``T`` and every metric::

        BWT_j = σ · (E_{T,j} − E_{j,j}) / |E_{j,j}| · 100

    (final value versus the value just after learning the task), then the mean over metrics.
    Positive = the task improved after it was learned (negative = forgetting).

    Returns:
        ``dict[task, float]`` in order of first appearance.
    """
    return _per_task_change(matrix, higher_is_better, "first")


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
    """The performance matrix of a ``performance.json`` dict (SPEC §9).

    Returns:
        list over phases (ordered by their ``"phase"`` number) of each phase's ``"metrics"``
        (copies; values as floats).
    """
    return [_copy_result(ph["metrics"]) for ph in _phases(performance)]


def final_result(performance: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """The last phase's ``"metrics"`` of a ``performance.json`` dict (a copy) — the table row."""
    return _copy_result(_phases(performance)[-1]["metrics"])
