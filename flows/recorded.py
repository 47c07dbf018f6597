"""Every flow's run in the platform's own record (the control database's ``runs`` table), for
``massar status``: when it started, then completed with a short summary, or failed with the
sentence a person reads.

    @flow(name="evaluate")
    @recorded
    def evaluate(settings=None, home=None, ...): ...

Prefect keeps the operational detail (logs, tasks, artifacts); this record is what the officer's
home page reads, whatever ran the flow (the command line, a deployment, a parent flow) and
whether or not Prefect's API can be reached afterwards. The record itself is written by
tasks/run_record.py.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from ground.errors import OperatorError
from tasks.run_record import record_end, record_start

F = TypeVar("F", bound=Callable[..., Any])
TEXT_LIMIT = 400


def recorded(fn: F) -> F:
    """Wrap a flow function (under ``@flow``) so that its run is recorded; the function needs a
    ``settings`` or ``home`` parameter. Recording never fails the flow: a control database
    that cannot be written is a warning in the log."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(*args, **kwargs).arguments
        started = record_start(arguments)
        try:
            result = fn(*args, **kwargs)
        except Exception as error:
            record_end(started, "failed", {"failure": failure_sentence(error)})
            raise
        except BaseException as error:  # interrupted: the run did not end by itself
            record_end(started, "crashed", {"failure": failure_sentence(error)})
            raise
        record_end(started, "completed", compact(result))
        return result

    # Prefect validates parameters against the signature with the wrapper's globals (this
    # module's): give it the flow's annotations already evaluated.
    with contextlib.suppress(NameError):  # an annotation for type checkers only: left as text
        run.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
    return run  # type: ignore[return-value]


def failure_sentence(error: BaseException) -> str:
    """The sentence that says why a run failed: the platform's own sentence for an error it
    foresaw; otherwise the kind of error and where its traceback is (an unforeseen message
    may quote data, so it stays in the logs)."""
    if isinstance(error, OperatorError):
        return _short(str(error))
    if not isinstance(error, Exception):
        return (
            f"Stopped before its end ({type(error).__name__}): the process was interrupted; "
            "run the flow again."
        )
    return (
        f"Stopped by an unexpected error ({type(error).__name__}): its traceback is in the "
        "run's log in Prefect (and in logs/massar-errors.log when run from the command "
        "line); report it to the platform's maintainers."
    )


def compact(result: Any) -> dict[str, Any]:
    """What is kept of a flow's result: its numbers and short texts, one level of nesting
    deep (counts, ids, outcome sentences; flows return no pupil data)."""
    if not isinstance(result, dict):
        return {"items": len(result)} if isinstance(result, list | tuple) else {}
    out: dict[str, Any] = {}
    for key, value in result.items():
        if isinstance(value, dict):
            inner = {k: _scalar(v) for k, v in value.items() if _is_scalar(v)}
            if inner:
                out[str(key)] = inner
        elif isinstance(value, list):
            out[str(key)] = len(value)
        elif _is_scalar(value):
            out[str(key)] = _scalar(value)
    return out


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _scalar(value: Any) -> Any:
    return _short(value) if isinstance(value, str) else value


def _short(text: str) -> str:
    return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1] + "…"
