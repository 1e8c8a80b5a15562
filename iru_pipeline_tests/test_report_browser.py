"""report.html in a real browser: the report of a real pipeline run against the bundled fake
(ingestion, then the evidence assets and auditor export materialised by Dagster) opened in
headless Debian Chromium, driven over the Chrome DevTools Protocol on loopback.

The page must load with no console error and no network request besides the file itself, show
the test grid and the charts, and sort the access review when a header is clicked. A full-page
screenshot is saved under data/test-artifacts/ (the README's picture comes from the same page).
Skipped only where /usr/bin/chromium is absent; `.ci/run` installs it.
"""

from __future__ import annotations

import base64
import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster_duckdb import DuckDBResource

from iru_pipeline.demo import write_demo_evidence_inputs
from iru_pipeline.evidence.assets import evidence_assets
from iru_pipeline.evidence.controls import CONTROL_TESTS
from iru_pipeline.resources import IntercomResource

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "data" / "test-artifacts"
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
WAIT_S = 60

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian chromium is not installed (/usr/bin/chromium): `apt-get install chromium`")


class DevTools:
    """A minimal Chrome DevTools Protocol client: one websocket to the browser, one page session.
    (Playwright would download its own browser build; this drives the Debian package directly.)"""

    def __init__(self, profile: Path) -> None:
        self.proc = subprocess.Popen(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
             f"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._drain, args=(lines,), daemon=True).start()
        url, deadline = "", time.monotonic() + WAIT_S
        while not url and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if line.startswith("DevTools listening on "):
                url = line.split(" on ", 1)[1].strip()
        assert url.startswith("ws://127.0.0.1:"), "chromium did not open its DevTools port"
        from websockets.sync.client import connect

        self.ws = connect(url, max_size=None, open_timeout=WAIT_S)
        self.events: list[dict[str, Any]] = []
        self._id = 0
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def _drain(self, lines: queue.Queue[str]) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            lines.put(line)

    def send(self, method: str, params: dict[str, Any] | None = None, page: bool = False) -> dict[str, Any]:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if page:
            message["sessionId"] = self.session
        self.ws.send(json.dumps(message))
        while True:
            data = json.loads(self.ws.recv(timeout=WAIT_S))
            if data.get("id") == self._id:
                assert "error" not in data, (method, data["error"])
                return data["result"]
            self.events.append(data)

    def wait_for(self, event: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while not any(e.get("method") == event for e in self.events):
            assert time.monotonic() < deadline, f"no {event}"
            self.events.append(json.loads(self.ws.recv(timeout=WAIT_S)))

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, page=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except Exception:  # noqa: BLE001 - the browser may close the socket before answering
            pass
        try:
            self.proc.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def fake_report(loaded: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dg.ExecuteInProcessResult]:
    """The loaded fake database with one evidence run materialised by Dagster; returns the
    report path that the auditor_export asset linked in its metadata."""
    folder = tmp_path_factory.mktemp("report_browser")
    db = folder / "iru.duckdb"
    shutil.copyfile(loaded.settings.duckdb_path, db)
    config = write_demo_evidence_inputs(loaded.fake, folder)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IRU_EVIDENCE_CONFIG", str(config))
        mp.setenv("IRU_PII_KEY", loaded.env["IRU_PII_KEY"])
        resources = {"duckdb": DuckDBResource(database=str(db)), "intercom": IntercomResource()}
        result = dg.materialize(evidence_assets, resources=resources,
                                run_config=QUIET, raise_on_error=False)
    assert result.success
    export = next(m for m in result.get_asset_materialization_events()
                  if m.asset_key == dg.AssetKey(["evidence", "auditor_export"]))
    metadata = export.materialization.metadata
    report = Path(metadata["report"].value)
    assert report.is_file() and metadata["report_url"].value == report.resolve().as_uri()
    return report, result


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    tools = DevTools(tmp_path / "chromium-profile")
    try:
        yield tools
    finally:
        tools.close()


_PAGE_FACTS = """(() => {
  const grid = document.querySelector('#test-grid');
  return {
    title: document.title,
    gridRows: grid ? grid.querySelectorAll('tr').length - 1 : 0,
    gridCells: grid ? grid.querySelectorAll('td[data-status]').length : 0,
    workspaces: grid ? grid.querySelectorAll('tr')[0].querySelectorAll('th').length - 2 : 0,
    histories: document.querySelectorAll('.history svg').length,
    charts: Array.from(document.querySelectorAll('.chart[id] svg')).map(s => s.closest('.chart').id),
    chartMarks: document.querySelectorAll('#chart-activity svg path, #chart-activity svg rect').length,
    banners: Array.from(document.querySelectorAll('.banner')).map(b => b.textContent.trim()),
    height: document.documentElement.scrollHeight,
  };
})()"""

_SORT_BY = """((name) => {
  const th = Array.from(document.querySelectorAll('#access-review th')).find(h => h.textContent === name);
  th.click();
  const col = Number(th.dataset.col);
  return Array.from(document.querySelectorAll('#access-review tbody tr')).map(r => r.cells[col].textContent);
})"""


def test_the_report_opens_offline_without_errors_and_shows_grid_and_charts(fake_report, browser: DevTools) -> None:
    report, _ = fake_report
    url = report.resolve().as_uri()
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.send(f"{domain}.enable", page=True)
    browser.send("Emulation.setDeviceMetricsOverride",
                 {"width": 1200, "height": 900, "deviceScaleFactor": 1, "mobile": False}, page=True)
    browser.send("Page.navigate", {"url": url}, page=True)
    browser.wait_for("Page.loadEventFired")
    browser.evaluate("new Promise(r => setTimeout(r, 500))")  # let late console messages arrive
    facts = browser.evaluate(_PAGE_FACTS)

    requested = [e["params"]["request"]["url"] for e in browser.events if e.get("method") == "Network.requestWillBeSent"]
    assert requested == [url], "the page fetched something besides itself"
    errors = [e for e in browser.events if e.get("method") == "Runtime.exceptionThrown"
              or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
              or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
    assert errors == []

    regions = 3
    assert facts["gridRows"] == len(CONTROL_TESTS) and facts["workspaces"] == regions
    assert facts["gridCells"] == len(CONTROL_TESTS) * regions
    assert facts["histories"] == len(CONTROL_TESTS)
    assert {"chart-activity", "chart-logins", "chart-first-reply", "chart-retention"} <= set(facts["charts"])
    assert facts["chartMarks"] > 10
    assert any("Not a production Intercom host" in b and "127.0.0.1" in b for b in facts["banners"])

    ids = browser.evaluate(f"{_SORT_BY}('admin_id')")
    again = browser.evaluate(f"{_SORT_BY}('admin_id')")
    assert ids == sorted(ids, key=_natural) and again == list(reversed(ids)) and len(ids) > 3

    browser.send("Emulation.setDeviceMetricsOverride",
                 {"width": 1200, "height": min(facts["height"], 16000), "deviceScaleFactor": 1, "mobile": False},
                 page=True)
    shot = browser.send("Page.captureScreenshot", {"format": "png"}, page=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "report.png").write_bytes(base64.b64decode(shot["data"]))
    assert (ARTIFACTS / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _natural(value: str) -> tuple[float, str]:
    try:
        return float(value), ""
    except ValueError:
        return float("inf"), value
