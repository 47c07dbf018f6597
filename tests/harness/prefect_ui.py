"""Prefect's server with its web UI and basic auth, and an officer's steps in it, driven in
Debian's headless chromium by Playwright (sync API); nothing is downloaded, nothing leaves
127.0.0.1.

:class:`PrefectUIServer` starts ``prefect server start`` as the production stack runs it
(``PREFECT_SERVER_API_AUTH_STRING``, UI on) with its own home and SQLite database.
:func:`prefect_ui` yields a :class:`PrefectUI`: a fresh browser profile in which an officer logs
in through the UI's prompt, opens a flow run, reads its logs and artifacts, fills and submits
the form of a paused run, and takes screenshots. The pages are those of Prefect's classic UI
(Vue), the one the runs' own "View at" links open.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from massar.stack import auth_header, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PREFECT = str(Path(sys.executable).with_name("prefect"))
# Long enough for a Vue page that polls the API every few seconds to show a change.
UI_TIMEOUT_MS = 30_000


class PrefectUIServer:
    """``prefect server start`` on a free 127.0.0.1 port, UI on, API behind ``auth_string``.

    :attr:`url` is the UI, :attr:`api_url` the API; :meth:`client_settings` are the Prefect
    settings a flow needs to run against it.
    """

    def __init__(self, auth_string: str = "admin:pass", root: Path | None = None) -> None:
        self.auth_string = auth_string
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.url}/api"
        self.root = root or Path(tempfile.mkdtemp(prefix="massar-prefect-ui-"))
        self.log_path = self.root / "server.log"
        self.process: subprocess.Popen | None = None

    def environment(self) -> dict[str, str]:
        home = self.root / "prefect-home"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            {
                "PREFECT_HOME": str(home),
                "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db",
                "PREFECT_UI_ENABLED": "true",
                # Without it the UI calls the default port 4200, not ours.
                "PREFECT_UI_API_URL": self.api_url,
                "PREFECT_SERVER_UI_V2_ENABLED": "false",  # as the production stack
                "PREFECT_SERVER_API_AUTH_STRING": self.auth_string,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "DO_NOT_TRACK": "1",
            }
        )
        return env

    def start(self, timeout: float = 90.0) -> PrefectUIServer:
        from massar.prefect_database import start_from_template

        self.root.mkdir(parents=True, exist_ok=True)
        env = self.environment()
        # A copy of the installation's migrated database, as a fresh home's embedded API
        # starts (massar/prefect_database.py): no migrations, no block registrations.
        if start_from_template(Path(env["PREFECT_HOME"]) / "prefect.db"):
            env["PREFECT_API_BLOCKS_REGISTER_ON_START"] = "false"
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # stop() ends the server and the processes it started
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Prefect's server stopped at start:\n{self.server_log()}")
            if self.healthy():
                return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(
            f"Prefect's server did not answer in {timeout:g} s:\n{self.server_log()}"
        )

    def healthy(self) -> bool:
        request = urllib.request.Request(f"{self.api_url}/health", headers=self.auth_header())
        try:
            with urllib.request.urlopen(request, timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    def auth_header(self) -> dict[str, str]:
        return auth_header(self.auth_string)

    @contextlib.contextmanager
    def as_api(self) -> Iterator[None]:
        """Flows and clients of this process use this server (with its auth string) inside the
        block, in every thread: Prefect's own threads (the process pool's forwarding of task
        events) do not see a settings context and would otherwise start an embedded API."""
        import prefect.context
        from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

        updates = {PREFECT_API_URL: self.api_url, PREFECT_API_AUTH_STRING: self.auth_string}
        with temporary_settings(updates=updates):  # noqa: SIM117 (the next reads this one)
            # What prefect_test_harness does for the same reason (an internal helper).
            with prefect.context._temporary_global_settings_context(
                prefect.context.SettingsContext.get()
            ):
                yield

    def server_log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def __enter__(self) -> PrefectUIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def drain_prefect_workers(server: PrefectUIServer) -> None:
    """Send what this process's Prefect log and event workers still hold for ``server`` while
    it is up. Left to the session's end, the test harness's drain retried them against the
    stopped server for over a minute (70 s of teardown, now under 1 s)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        for result in (APILogWorker.drain_all(), EventsWorker.drain_all()):
            if inspect.isawaitable(result):
                await result

    with server.as_api():
        run_coro_as_sync(drain())


@contextlib.contextmanager
def flow_logs_at_info() -> Iterator[None]:
    """Let flow runs send their INFO lines to the API (the test session's Prefect logs at
    WARNING), as a production worker does; restores the level afterwards."""
    logger = logging.getLogger("prefect")
    before = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.setLevel(before)


class PrefectUI:
    """One officer's browser session in Prefect's UI (a page of a fresh browser profile)."""

    def __init__(self, page, base_url: str, screenshots: Path) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/")
        self.screenshots = screenshots
        self.saved: list[Path] = []

    # ---- pages --------------------------------------------------------------------------------

    def login(self, auth_string: str) -> None:
        """Type the auth string into the UI's login prompt, as an officer does on first load."""
        self.page.goto(f"{self.base_url}/login")
        prompt = self.page.get_by_placeholder("admin:pass")
        prompt.fill(auth_string)
        self.page.get_by_role("button", name="Login").click()
        self.page.wait_for_url(lambda url: "/login" not in url)

    def open_flow_run(self, flow_run_id: str, state: str | None = None) -> None:
        """The flow run's page (the runs' "View at" link); with ``state``, wait until the
        page shows the run in that state (the page refreshes itself)."""
        self.page.goto(f"{self.base_url}/runs/flow-run/{flow_run_id}")
        self.page.locator(".p-tabs").wait_for()
        if state is not None:
            self.wait_for_state(state)

    def wait_for_state(self, state: str) -> None:
        self.page.locator(".state-badge", has_text=state).first.wait_for()

    def open_tab(self, name: str) -> None:
        self.page.locator("li.p-tab", has_text=name).first.click()

    def wait_for_log_line(self, text: str) -> str:
        """The text of the first log line shown on the Logs tab that contains ``text``."""
        self.open_tab("Logs")
        line = self.page.locator(".log-row", has_text=text).first
        line.wait_for()
        return line.inner_text()

    def log_lines(self) -> list[str]:
        self.open_tab("Logs")
        self.page.locator(".log-row").first.wait_for()
        return self.page.locator(".log-row").all_inner_texts()

    def open_artifact(self, key: str) -> str:
        """From the flow run's Artifacts tab, open the artifact ``key`` and return what its page
        shows (a table artifact: its headers and cells, tab-separated)."""
        self.open_tab("Artifacts")
        self.page.get_by_text(key, exact=True).first.click()
        self.page.wait_for_url(re.compile(r"/artifacts/artifact/"))
        content = self.page.locator(".artifact-data-view")
        content.wait_for()
        return content.inner_text()

    # ---- the form of a paused run ---------------------------------------------------------------

    def open_resume_form(self):
        """Click the paused run's Resume button; returns the form's dialog."""
        self.page.get_by_role("button", name="Resume").first.click()
        dialog = self.page.locator(".p-modal", has_text="Resume Flow Run")
        dialog.wait_for()
        return dialog

    def fill_resume_form(self, dialog, texts: dict[str, str], switches: dict[str, bool]) -> None:
        """Type into the form's text fields and set its switches, found by their labels (the
        run input's field names as Prefect titles them: ``approver`` -> "Approver")."""

        def field(label: str):
            title = self.page.locator(".p-label__label", has_text=re.compile(rf"^{label}\b"))
            return dialog.locator(".schema-form-property").filter(has=title).first

        for label, value in texts.items():
            box = field(label).locator("textarea, input:not([type=checkbox])").first
            box.fill(value)
            box.blur()
        for label, wanted in switches.items():
            toggle = field(label).get_by_role("switch")
            if (toggle.get_attribute("aria-checked") == "true") != wanted:
                toggle.click()
            expected = "true" if wanted else "false"
            self.page.wait_for_function(
                "([el, want]) => el.getAttribute('aria-checked') === want",
                arg=[toggle.element_handle(), expected],
            )

    def submit_resume_form(self, dialog) -> None:
        dialog.get_by_role("button", name="Submit").click()
        dialog.wait_for(state="hidden")

    # ---- evidence -----------------------------------------------------------------------------

    def screenshot(self, name: str) -> Path:
        path = self.screenshots / f"{len(self.saved) + 1:02d}-{name}.png"
        self.page.screenshot(path=path, full_page=True)
        self.saved.append(path)
        return path


def _loopback_only(route, blocked: list[str]) -> None:
    """The UI fetches third-party analytics configuration on load: never let it out."""
    host = urlsplit(route.request.url).hostname
    if route.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
        route.continue_()
    else:
        blocked.append(host or route.request.url)
        route.abort()


@contextlib.contextmanager
def prefect_ui(base_url: str, screenshots: Path, copy_to: Path | None = None) -> Iterator:
    """A headless chromium with a fresh profile on Prefect's UI at ``base_url``; screenshots go
    to ``screenshots`` (and are copied to ``copy_to`` when it is given). Requests to anything
    but 127.0.0.1 are aborted; their hosts are in ``ui.blocked``."""
    from playwright.sync_api import sync_playwright

    screenshots.mkdir(parents=True, exist_ok=True)
    if copy_to is not None:  # only this session's screenshots there
        shutil.rmtree(copy_to, ignore_errors=True)
    profile = Path(tempfile.mkdtemp(prefix="massar-chromium-"))
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(profile),
                executable_path=CHROMIUM,
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": 1400, "height": 1000},
                locale="fr-FR",
                timezone_id="Africa/Casablanca",
            )
            blocked: list[str] = []
            context.route("**/*", lambda route: _loopback_only(route, blocked))
            context.set_default_timeout(UI_TIMEOUT_MS)
            page = context.pages[0] if context.pages else context.new_page()
            ui = PrefectUI(page, base_url, screenshots)
            ui.blocked = blocked  # type: ignore[attr-defined]
            try:
                yield ui
            except BaseException:
                with contextlib.suppress(Exception):
                    ui.screenshot("failure")
                raise
            finally:
                context.close()
                if copy_to is not None:
                    copy_to.mkdir(parents=True, exist_ok=True)
                    for path in ui.saved:
                        shutil.copy(path, copy_to / path.name)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
