"""Fetching a fund's requests not answered yet (SFTP, or the home's outbox)."""

from __future__ import annotations

import re
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import select

from connectors.partner_transport import (
    DeliveryError,
    RefusedFile,
    fetch_requests,
    partner_transport_for,
)
from ground.errors import OperatorError
from ground.settings import Settings
from tasks.exchange_batches import _database, _profile
from tasks.fund_files_set_aside import (
    max_bytes,
    request_problem,
    set_aside,
    set_aside_names,
)
from warehouse.control import ExchangeBatch


def fetch_new_requests(settings: Settings, partner: str) -> list[Path]:
    """The fund's request files not answered yet, fetched from its outbox (SFTP, or the home's
    ``exchange/<partner>/outbox/`` in the embedded mode) into ``exchange/<partner>/received/``,
    as received. A request already answered by a batch is not fetched again.

    A request that is not a plain file name, is larger than ``request_max_megabytes`` or cannot
    be read as its profile says is set aside with a sentence (tasks/fund_files_set_aside.py)
    and not returned: the fund's other requests are answered."""
    profile = _profile(partner)
    database = _database(settings)
    try:
        with database.session() as session:
            known = set(
                session.scalars(
                    select(ExchangeBatch.request_file).where(ExchangeBatch.partner == partner)
                )
            )
    finally:
        database.dispose()
    transport = partner_transport_for(settings, partner)
    refused: list[RefusedFile] = []
    try:
        received = fetch_requests(
            transport,
            pattern=re.compile(profile.request.file_name),
            known=known | set_aside_names(settings, partner),
            max_bytes=max_bytes(settings.partners[partner].request_max_megabytes),
            refused=refused.append,
        )
    except DeliveryError as error:
        raise OperatorError(str(error)) from error
    for refusal in refused:
        set_aside(settings, partner, "request", refusal.name, refusal.reason, size=refusal.size)
    paths = []
    for item in received:
        path = transport.received_folder / item.name
        problem = request_problem(profile, path)
        if problem is None:
            paths.append(path)
        else:
            set_aside(
                settings, partner, "request", item.name, problem, data=item.data, received=path
            )
    return paths


def _request_year(name: str) -> str | None:
    found = re.search(r"_(\d{4})-(\d{4})_", name)
    return f"{found.group(1)}/{found.group(2)}" if found else None


fetch_requests_task = task(name="fetch_partner_requests", cache_policy=NO_CACHE)(fetch_new_requests)
