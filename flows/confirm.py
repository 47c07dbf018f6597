"""Flow ``confirm_resend``: an officer applies a held resend from Prefect's UI. The
deployment ``confirm-resend`` has no schedule: its run form asks for the submission (as
``massar status`` lists it) and the officer's name; ``massar confirm`` does the same from a
terminal."""

from __future__ import annotations

from dataclasses import asdict

from prefect import flow, get_run_logger

from flows.recorded import recorded
from ground.settings import Settings, flow_settings
from tasks.resends import confirm_resend_task


@flow(name="confirm_resend")
@recorded
def confirm_resend(
    submission: int,
    confirmed_by: str,
    settings: Settings | None = None,
    home: str | None = None,
) -> dict:
    """Apply the held resend ``submission`` at the next night; fails with one sentence when
    there is no such submission or it is not held. Returns what was done (ids and counts)."""
    settings = flow_settings(settings, home)  # secrets: from the home, not Prefect
    done = confirm_resend_task(settings, submission, confirmed_by)
    get_run_logger().info(
        "Submission %d (%s of school %s) confirmed by %s: the next night applies it.",
        done.submission_id,
        done.dataset,
        done.school_code,
        done.confirmed_by,
    )
    return asdict(done)
