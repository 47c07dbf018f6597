"""Worker processes let go once their tasks are done (flows/runners.let_workers_go) wind down
while the flow goes on, and the runner's block still ends only once they have exited."""

from __future__ import annotations

import os

from prefect import task

from flows.runners import let_workers_go, school_task_runner
from ground.settings import Settings


@task
def worker_pid() -> int:
    return os.getpid()


def _alive(pid: int) -> bool:
    """Whether ``pid`` is still a process (a child not yet waited for counts as one)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_workers_let_go_early_have_exited_when_the_block_ends(prefect_server):
    with school_task_runner(Settings()) as runner:
        pids = {runner.submit(worker_pid, {}).result() for _ in range(2)}
        let_workers_go(runner)
        let_workers_go(runner)  # twice: harmless
        assert os.getpid() not in pids
    assert not any(_alive(pid) for pid in pids)  # exited and waited for, none left behind


def test_a_runner_never_let_go_ends_as_before(prefect_server):
    with school_task_runner(Settings()) as runner:
        pid = runner.submit(worker_pid, {}).result()
    assert not _alive(pid)
