"""The HTML profile report of a run profiled here, opened in a real headless Chromium.

Playwright drives the distribution's ``chromium`` (``scripts/dev test``
installs it when missing). The page must load with no console error and no
request but its own file, and show what the run did: a timeline bar per call,
a graph node per function, the summary's counts, the metric. Set
``CHIA_REPORT_SCREENSHOT=docs/_static/report.png`` to save the screenshot the
README shows. Without Chromium the test skips, except in CI (``CI`` set),
where it fails.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from chia.base.bypass import Bypass
from chia.base.ChiaFunction import ChiaFunction, get
from chia.trace import export, log_metric, profiler, report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@ChiaFunction(num_cpus=0)
def design(cores: int) -> dict[str, int]:
    time.sleep(0.25)  # the work a build would do: long enough for a bar of its own
    return {"cores": cores}


@ChiaFunction(num_cpus=0)
def simulate(config: dict[str, int]) -> float:
    time.sleep(0.3)
    return 100.0 / config["cores"]


@ChiaFunction(num_cpus=0)
def pick_best(*costs: float) -> float:
    time.sleep(0.1)
    return min(costs)


@ChiaFunction(num_cpus=0)
def broken(reason: str) -> None:
    time.sleep(0.1)
    raise ValueError(reason)


def replay_simulation(tag: str | None, data_path: str | None, *args: Any, **kwargs: Any) -> float:
    return 1.0


@pytest.fixture(scope="module")
def profile(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[export.ProfileData]:
    """A small sweep profiled for real: designs feed simulations feed a pick; one failure; a replayed round."""
    directory = tmp_path_factory.mktemp("report")
    replay_yaml = directory / "replay.yaml"
    replay_yaml.write_text("bypass:\n  simulate:\n    bypass: true\n    tags: ['replay_.*']\n")
    profiler.stop_collector()
    get(
        [design.chia_remote(0) for _ in range(3)]
    )  # start the workers first: the profile shows the work, not Ray's start
    profiler.start_collector(log_dir=directory / "profile")
    try:
        designs: list[Any] = [design.chia_remote(cores) for cores in (1, 2, 4)]
        costs: list[Any] = [
            simulate.options(_chia_tag=f"sim_c{2**i}").chia_remote(ref) for i, ref in enumerate(designs)
        ]
        best = get(pick_best.chia_remote(*costs))
        for step, cost in enumerate(sorted(get(costs), reverse=True)):
            log_metric("best_cost", cost, step=step)
        with pytest.raises(ValueError, match="no license"):
            get(broken.chia_remote("no license"))
        bypass = Bypass(yaml_path=str(replay_yaml))
        bypass.set_provider("simulate", replay_simulation)
        replayed = get(
            [simulate.options(_chia_tag=f"replay_c{cores}").chia_remote({"cores": cores}) for cores in (1, 2)]
        )
    finally:
        Bypass(yaml_path=None)
        log = profiler.stop_collector()
    assert (best, replayed) == (25.0, [1.0, 1.0])
    assert log is not None
    yield export.load_profile(log)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; scripts/dev test installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (scripts/dev test installs it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def open_report(browser: Browser, path: Path) -> tuple[Page, list[str]]:
    """The report opened in a fresh page, and every problem seen: console errors, failed or foreign requests."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    url = path.resolve().as_uri()
    page.on(
        "console",
        lambda message: problems.append(f"console {message.type}: {message.text}") if message.type == "error" else None,
    )
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url}"))
    page.on("request", lambda request: problems.append(f"request: {request.url}") if request.url != url else None)
    page.goto(url, wait_until="load")
    return page, problems


def test_the_report_shows_the_run_in_a_real_browser(
    profile: export.ProfileData, browser: Browser, tmp_path: Path
) -> None:
    path = report.write_report(profile, tmp_path / "report.html")
    page, problems = open_report(browser, path)

    bars = page.locator("#timeline-plot rect.bar")
    assert bars.count() == len(profile.calls) == 10  # one bar per call: none narrow enough to share one
    assert [int(value) for value in bars.evaluate_all("els => els.map(e => e.dataset.calls)")] == [1] * 10
    drawn = Counter(bars.evaluate_all("els => els.map(e => e.dataset.function)"))
    assert drawn == Counter(call.function for call in profile.calls)

    functions = {call.function for call in profile.calls}
    nodes = page.locator("#graph g.fn")
    assert nodes.count() == len(functions) == 4
    graph_counts = dict(nodes.evaluate_all("els => els.map(e => [e.dataset.function, Number(e.dataset.calls)])"))
    assert graph_counts == dict(Counter(call.function for call in profile.calls))
    assert page.locator("#graph g.edge.feed").count() == 2  # design -> simulate -> pick_best
    assert page.locator("#graph g.fn.critical").count() == 3

    def cell(function: str, column: str) -> str:
        row = page.locator(f'#summary tr[data-function="{__name__}.{function}"]')
        return row.locator(f'td[data-col="{column}"]').inner_text()

    assert (cell("simulate", "real.calls"), cell("simulate", "replayed.calls")) == ("3", "2")
    assert (cell("design", "real.calls"), cell("pick_best", "real.calls")) == ("3", "1")
    assert (cell("broken", "real.calls"), cell("broken", "failed")) == ("1", "1")
    assert page.locator('svg.metric[data-metric="best_cost"]').get_attribute("data-points") == "3"

    screenshot = os.environ.get("CHIA_REPORT_SCREENSHOT")
    if screenshot:
        page.screenshot(path=screenshot, full_page=True)
    page.locator("#timeline-plot rect.bar.failed").hover()
    tip = page.locator("#tip")
    assert tip.is_visible() and "failed: ValueError" in tip.inner_text() and "args: str[10]" in tip.inner_text()
    replayed = page.locator("#timeline-plot rect.bar.replayed").first.get_attribute("data-tip") or ""
    assert "replayed by" in replayed and "[replay_c" in replayed
    page.locator("#zoom-in").click()
    assert page.locator("#timeline-axis text").count() > 0

    assert problems == []


def test_a_baseline_run_adds_the_comparison(profile: export.ProfileData, browser: Browser, tmp_path: Path) -> None:
    path = report.write_report(profile, tmp_path / "compared.html", baseline=profile)
    page, problems = open_report(browser, path)
    row = page.locator(f'#comparison tr[data-function="{__name__}.simulate"][data-mode="real"]')
    assert row.locator('td[data-col="calls_a"]').inner_text() == "3"
    assert row.locator('td[data-col="p50_ratio"]').inner_text() == "1.00"
    assert problems == []
