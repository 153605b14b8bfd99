"""``nas report``: one self-contained page of real digits runs, checked as a file and in headless Chromium."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections import namedtuple
from html.parser import HTMLParser
from pathlib import Path

import pytest
from cli_processes import REPO, nas_here, trials_stored, wait_for

from nas.metrics import Metrics
from nas.report import REPORT_FILE, write_report
from nas.spec import ArchSpec, StageSpec
from nas.store import RunStore, TrialRecord

FAST = ["--proxy-width", "0.25", "--proxy-depth", "0.25", "--proxy-resolution", "16", "--quiet"]
SECTIONS = ("settings", "progress", "leaderboard", "frontier", "b0", "failures")


# ----------------------------------------------------------------------------------------- pages
class Page(HTMLParser):
    """What a test needs of a page: its script and link tags, sections, figure containers (drawn or not:
    an svg or canvas inside) and the leaderboard's rows."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict]] = []
        self.loading_tags: list[str] = []  # <script ...> and <link ...> as written
        self.sections: list[str] = []
        self.figures: list[dict] = []  # {"section", "kind", "drawn"}
        self.leaderboard_rows = 0
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "link"):
            self.loading_tags.append(self.get_starttag_text())
        if tag == "section":
            self.sections.append(attrs.get("id", ""))
        if tag in ("svg", "canvas"):
            for _, open_attrs in self.stack:
                if "data-figure" in open_attrs:
                    self.figures[open_attrs["_figure"]]["drawn"] = True
        if tag == "tr" and any(t == "tbody" for t, _ in self.stack) and \
                any(t == "table" and "leaderboard" in a.get("class", "") for t, a in self.stack):
            self.leaderboard_rows += 1
        if "data-figure" in attrs:
            attrs["_figure"] = len(self.figures)
            self.figures.append({"section": self.sections[-1] if self.sections else "", "kind": attrs["data-figure"],
                                 "drawn": False})
        if tag not in self.VOID:
            self.stack.append((tag, attrs))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return


def assert_self_contained(text: str) -> Page:
    page = Page(text)
    assert page.loading_tags, "the page has no script at all"
    assert [t for t in page.loading_tags if "http" in t.lower() or "src=" in t.lower() or "href=" in t.lower()] == []
    return page


# ------------------------------------------------------------------------------ real digits runs
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two real digits searches: one with rungs, a re-rank and a fidelity check; one plain."""
    root = tmp_path_factory.mktemp("report")
    rungs, plain = root / "rungs", root / "plain"
    assert nas_here("search", "--controller", "random", "--trials", "4", "--rungs", "1,2", "--eta", "2", "--rerank",
                    "2", *FAST, "--out", str(rungs)).returncode == 0
    written_by_search = (rungs / REPORT_FILE).read_text()
    assert nas_here("fidelity", str(rungs), "--top", "3", "--epochs", "1").returncode == 0
    assert nas_here("search", "--controller", "random", "--trials", "2", "--epochs", "1", "--seed", "1", *FAST,
                    "--out", str(plain)).returncode == 0
    return rungs, plain, written_by_search


def folder_state(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


@pytest.mark.slow(reason="the report of a real search with rungs, a re-rank and a fidelity check")
def test_search_writes_its_report_and_nas_report_rebuilds_it_self_contained(runs):
    rungs, _, written_by_search = runs
    assert_self_contained(written_by_search)
    assert 'id="rungs"' in written_by_search and 'id="fidelity"' not in written_by_search  # checked afterwards
    before = folder_state(rungs)
    result = nas_here("report", str(rungs))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {rungs / REPORT_FILE}"
    after = folder_state(rungs)
    assert {name for name in after if after[name] != before.get(name)} == {REPORT_FILE}  # nothing else touched
    page = assert_self_contained((rungs / REPORT_FILE).read_text())
    assert page.sections == ["settings", "progress", "leaderboard", "frontier", "fidelity", "rungs", "b0", "failures"]
    assert {f["section"] for f in page.figures} == {"progress", "frontier", "fidelity", "b0"}
    text = (rungs / REPORT_FILE).read_text()
    assert "Kendall&#x27;s tau" in text or "Kendall's tau" in text
    assert "re-ranked reward" in text and ">B0<" in text  # B0 chosen by the re-rank, marked in the table
    assert page.leaderboard_rows == 4  # the 4 distinct candidates


@pytest.mark.slow(reason="two real runs in one report")
def test_two_runs_share_one_file(runs, tmp_path):
    rungs, plain, _ = runs
    out = tmp_path / "both.html"
    result = nas_here("report", str(rungs), str(plain), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["both.html"]
    text = out.read_text()
    page = assert_self_contained(text)
    assert "rungs: best so far" in text and "plain: best so far" in text  # both curves on one axis
    assert page.leaderboard_rows == 4 + 2
    assert text.count('id="plot-progress"') == 1 and text.count('id="plot-frontier"') == 1


@pytest.mark.slow(reason="a search resumed rebuilds its report; a report that cannot be written loses nothing")
def test_resume_rebuilds_the_report_and_a_report_that_fails_is_one_line(runs, tmp_path):
    run = tmp_path / "plain"
    shutil.copytree(runs[1], run)
    (run / REPORT_FILE).unlink()
    args = ["search", "--out", str(run), "--resume", "--quiet"]
    result = nas_here(*args)
    assert result.returncode == 0, result.stderr
    assert (run / REPORT_FILE).is_file() and REPORT_FILE in result.stdout
    (run / REPORT_FILE).unlink()
    (run / REPORT_FILE).mkdir()  # the report cannot be written there
    result = nas_here(*args)
    assert result.returncode == 0, result.stderr
    # the report's own warning (a loaded machine adds the busy-cores one, which is not what this test is about)
    warning = [line for line in result.stdout.splitlines() if line.startswith("warning:") and "report" in line]
    assert len(warning) == 1 and REPORT_FILE in warning[0] and "nas report" in warning[0]
    assert (run / "trials.csv").is_file() and (run / "b0.json").is_file()


@pytest.mark.slow(reason="a report read while another process is still searching")
def test_a_run_in_progress_in_another_process_renders(tmp_path):
    out = tmp_path / "live"
    proc = subprocess.Popen([sys.executable, "-m", "nas", "search", "--controller", "random", "--trials", "200",
                             "--epochs", "1", *FAST, "--out", str(out)], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(proc, trials_stored(out, 2), "two trials stored", 300, poll_s=0.2)
        path = write_report([out], out=tmp_path / "live.html")
        assert proc.poll() is None  # the search was still running while its report was read
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    text = path.read_text()
    page = assert_self_contained(text)
    assert page.sections == list(SECTIONS) and page.leaderboard_rows >= 2
    assert "of 200" in text


# ------------------------------------------------------------------------- runs made through the store
Decision = namedtuple("Decision", "name options")
DECISIONS = (Decision("kernel", (3, 5)), Decision("width", (16, 24, 32)))


def spec_for(kernel: int, width: int) -> ArchSpec:
    return ArchSpec(stem_channels=16, head_channels=64, resolution=32, num_classes=10, in_chans=1, stages=(
        StageSpec("fused_mbconv", 1, 3, 1, 1, 16), StageSpec("mbconv", 2, kernel, 2, 4, width, se_ratio=0.25)))


def record(kernel: int, width: int, status: str = "ok", accuracy: float | None = None, error: str = "") -> TrialRecord:
    spec = spec_for(kernel, width)
    macs, params = 1_000_000 * width * kernel, 1000 * width
    metrics = Metrics(status=status, accuracy=accuracy, params=params, macs=macs, epochs=1, error=error,
                      minival_size=287 if accuracy is not None else 0, wall_time_s=1.5)
    reward = None if accuracy is None else accuracy * (macs / 400e6) ** -0.07
    return TrialRecord(choices={"kernel": kernel, "width": width},
                       indices=(DECISIONS[0].options.index(kernel), DECISIONS[1].options.index(width)),
                       metrics=metrics, spec=spec, arch=f"er_r1_k3_s1_e1_c16 ir_r2_k{kernel}_s2_e4_c{width}_se0.25",
                       key=spec.key(), reward=reward, values={"macs": float(macs), "params": float(params)})


def stored_run(folder: Path) -> RunStore:
    store = RunStore.create(folder, {"space": "efficientnet", "trials": 8})
    for item in (record(3, 16, accuracy=0.81), record(5, 24, accuracy=0.86),
                 record(3, 32, "failed", error="RuntimeError: CUDA out of memory (tried 2 GiB)"),
                 record(5, 16, "diverged", error="loss became nan at step 12"),
                 record(5, 32, "failed", error="RuntimeError: CUDA out of memory (tried 4 GiB)"),
                 record(3, 24, accuracy=0.11)):
        store.record(item, DECISIONS)
    return store


def test_a_run_with_failed_trials_and_one_still_running_renders(tmp_path):
    store = stored_run(tmp_path / "run")
    spec = spec_for(5, 32)
    store.reserve("search", {"kernel": 5, "width": 32}, (1, 2), DECISIONS, spec, "running", "key-running")
    path = write_report([tmp_path / "run"])  # the study is open here, its trial 6 RUNNING
    assert path == tmp_path / "run" / REPORT_FILE
    text = path.read_text()
    page = assert_self_contained(text)
    assert page.sections == list(SECTIONS)
    assert page.leaderboard_rows == 3
    assert "CUDA out of memory (tried 2 GiB)" in text and "CUDA out of memory (tried 4 GiB)" not in text  # the first
    assert "loss became nan at step 12" in text
    assert "1 trial(s) RUNNING in the study" in text and "1 in progress" in text
    assert "(at chance)" in text  # 0.11 on 287 images of 10 classes


def test_bad_inputs_are_one_line_and_change_nothing(tmp_path):
    # closed before the folder's state is taken: left open, its connections (and the write-ahead log they
    # keep) would close whenever the garbage collector freed the store, inside the loop below (it failed so)
    stored_run(tmp_path / "run").close()
    before = folder_state(tmp_path / "run")
    (tmp_path / "empty").mkdir()
    (tmp_path / "a-file").write_text("x")
    cases = [
        (["report", str(tmp_path / "empty")], "no study here"),
        (["report", str(tmp_path / "missing")], "no such run folder"),
        (["report", str(tmp_path / "run"), "--out", str(tmp_path / "a-file" / "r.html")], "--out"),
        (["report", str(tmp_path / "run"), "--out", str(tmp_path / "no-folder" / "r.html")], "--out"),
        (["report", str(tmp_path / "run"), "--out", str(tmp_path / "empty")], "--out"),
        (["report", str(tmp_path / "run"), "--top", "0"], "--top"),
    ]
    for args, expected in cases:
        result = nas_here(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
        assert expected in result.stderr, result.stderr
    assert folder_state(tmp_path / "run") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "empty", "run"]
    assert list((tmp_path / "empty").iterdir()) == []


def test_runs_of_the_previous_version_render_together(tmp_path):
    """A search with a re-rank and a fidelity check of the old format, a v2 search and a scaling grid."""
    shutil.copytree(Path(__file__).parent / "data" / "runs-v1", tmp_path / "v1")
    runs = [tmp_path / "v1" / name for name in ("search", "v2", "grid")]
    path = write_report(runs, out=tmp_path / "v1.html")
    text = path.read_text()
    page = assert_self_contained(text)
    assert page.sections == ["settings", "progress", "leaderboard", "frontier", "fidelity", "b0", "failures"]
    assert "v2: ACC x (step time/" in text and "scale-grid" in text and "best grid candidate of grid" in text
    assert text.count("the folder&#x27;s own study.db") == 3  # the absolute paths the old run.json files hold


# --------------------------------------------------------------------------------- in a browser
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium on this machine: `apt-get install chromium` (scripts/setup.sh test installs it "
                "where apt-get works)")


def run_browser(args: list[str], workdir: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    """Headless Chromium, in a process group of its own that is killed whatever happens (its helpers too)."""
    command = [chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-extensions",
               "--disable-background-networking", f"--user-data-dir={workdir / 'profile'}",
               "--host-resolver-rules=MAP * ~NOTFOUND",  # offline: any attempt to load from a host fails loudly
               "--enable-logging=stderr", "--v=0", "--virtual-time-budget=20000", *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"Chromium did not finish within {timeout:.0f} s")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


@pytest.mark.slow(reason="the page of a real run rendered by headless Chromium: no console error, every figure drawn")
def test_the_report_renders_in_headless_chromium(runs, tmp_path):
    rungs = runs[0]
    report = tmp_path / "report.html"
    assert nas_here("report", str(rungs), "--out", str(report)).returncode == 0
    url = report.resolve().as_uri()
    result = run_browser(["--dump-dom", url], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []  # the page logs nothing when it works: any message is an error or a warning
    page = Page(result.stdout)
    assert page.sections == ["settings", "progress", "leaderboard", "frontier", "fidelity", "rungs", "b0", "failures"]
    assert page.figures and [f for f in page.figures if not f["drawn"]] == []
    assert {f["section"] for f in page.figures if f["kind"] == "plotly"} == {"progress", "frontier"}
    assert page.leaderboard_rows == 4
    assert "main-svg" in result.stdout  # plotly drew its SVG
    screenshot = tmp_path / "report.png"
    shot = run_browser(["--hide-scrollbars", "--window-size=1280,4200", f"--screenshot={screenshot}", url], tmp_path)
    assert shot.returncode == 0 and screenshot.stat().st_size > 10_000, shot.stderr[-2000:]
    print(f"screenshot of the report: {screenshot}")


def test_the_console_capture_sees_an_error_and_headings_sort_rows(tmp_path):
    """The browser test is not vacuous: an error thrown by a page shows in the captured console; and the
    page's sort script, clicked twice on a numeric column with an empty cell, orders the rows both ways."""
    from nas.report.html import SORT_SCRIPT, Cell, number, table

    rows = [[Cell("b", "b"), number(2.0)], [Cell("a", "a"), Cell("-")], [Cell("c", "c"), number(10.0)]]
    clicks = 'var th = document.querySelectorAll("th")[1]; th.click(); var first = rows(); th.click(); ' \
             'document.body.setAttribute("data-orders", first + "|" + rows()); undefinedFunction();'
    page = tmp_path / "sort.html"
    page.write_text(f"<!DOCTYPE html><html><body>{table(('name', 'value'), rows, sortable=True)}"
                    f"<script>{SORT_SCRIPT}</script><script>function rows() {{ return Array.prototype.map.call("
                    f"document.querySelectorAll('tbody tr'), function (r) {{ return r.cells[0].textContent; }})"
                    f".join(','); }} {clicks}</script></body></html>")
    result = run_browser(["--dump-dom", page.resolve().as_uri()], tmp_path)
    assert 'data-orders="b,c,a|c,b,a"' in result.stdout  # ascending, then descending; the empty cell last
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    assert len(console) == 1 and "undefinedFunction" in console[0]
