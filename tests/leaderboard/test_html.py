"""The self-contained HTML page: every table, inline styles, embedded plots, cells linked to their records, every
string escaped; and (slow, when Chromium is installed) a real browser renders it without a script error."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from satbench.cli.app import main
from satbench.leaderboard import build_tables, render_document
from satbench.records.results import read_records, write_record
from support.leaderboard_records import RECORDS, knn_record


CHROMIUM = Path("/usr/bin/chromium")
XSS = '<img src=x onerror="document.body.setAttribute(\'data-pwned\',\'1\')">'


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(html: str) -> _Tags:
    p = _Tags()
    p.feed(html)
    return p


def hostile_results(folder: Path) -> Path:
    """The fixture records plus one whose model, dataset folder and record file name carry HTML."""
    shutil.copytree(RECORDS, folder)
    rec = knn_record(model='evil"><script>document.title="pwned"</script>',
                     dataset={"name": XSS, "protocol_dataset": XSS, "root": f"/data/{XSS}"})
    rec["provenance"]["git_commit"] = "<b>commit</b>"
    write_record(rec, folder)
    rec = dict(rec, id="second")  # a second run: the "latest of 2 runs" note carries the names too
    rec["provenance"] = dict(rec["provenance"], date="2026-12-01T00:00:00")
    write_record(rec, folder)
    return folder


def test_page_holds_every_table_styles_plots_and_record_links(tmp_path, capsys):
    assert main(["leaderboard", "--results-dir", str(RECORDS), "--format", "html", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    page = (tmp_path / "o" / "index.html").read_text()
    assert out == page
    doc = parse(page)
    sections = [a["id"] for t, a in doc.tags if t == "section" and "id" in a]
    assert sections == ["t-knn", "t-knn_per_scale", "t-finetune", "t-linear", "t-linear-scene", "t-cached-linear",
                        "t-cached-linear-fmow", "t-segmentation", "plots", "records"]
    assert sum(t == "table" for t, _ in doc.tags) == 8 and "<style>" in page
    # self-contained: nothing is fetched (no src/href to another document), the plot is a data URI
    for t, a in doc.tags:
        for attr in ("src", "href"):
            if attr in a:
                assert a[attr].startswith(("#", "data:image/png;base64,")), (t, a)
    assert any(t == "img" and a["src"].startswith("data:image/png;base64,") for t, a in doc.tags)
    # every run cell links to its record's provenance on the page (protocol hash, weights sha256, commit)
    links = [a["href"] for t, a in doc.tags if t == "a" and a.get("href", "").startswith("#rec-")]
    targets = {a["id"] for t, a in doc.tags if t == "div" and a.get("class") == "record"}
    assert links and {h[1:] for h in links} == targets and len(targets) == 13  # 14 records, one superseded
    text = "".join(doc.text)
    assert "f6029dd49d984c278b6f18733528631ca5edfb69f5347a79303c3791a7958539" in text and "ab" * 32 in text
    assert "1111111" in text


def test_every_string_is_escaped(tmp_path, capsys):
    folder = hostile_results(tmp_path / "res")
    page = render_document(build_tables(read_records(folder)), "html", records=read_records(folder))
    doc = parse(page)
    assert not any(t == "img" and a.get("src") == "x" for t, a in doc.tags)  # the dataset name stayed text
    assert sum(t == "script" for t, _ in doc.tags) == 1  # only the page's own sorting script
    assert not any(t == "b" for t, _ in doc.tags)
    assert "&lt;img src=x onerror=" in page and XSS in "".join(doc.text)
    notes = [n for t in build_tables(read_records(folder)) for n in t.notes if XSS in n]
    assert notes and all(XSS not in page.split("<li>", 1)[1] for _ in notes)  # in a note, and escaped there
    # the same through the CLI, notes and titles included
    assert main(["leaderboard", "--results-dir", str(folder), "--format", "html"]) == 0
    cli = capsys.readouterr().out
    assert not any(t == "img" and a.get("src") == "x" for t, a in parse(cli).tags)


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium (Debian package chromium)")
def test_page_in_a_real_browser(tmp_path):
    """Headless Chromium: a screenshot, the DOM after scripts ran (every table, the sort script finished, no script
    error, the hostile record did not run), and no console error."""
    folder = hostile_results(tmp_path / "res")
    assert main(["leaderboard", "--results-dir", str(folder), "--format", "html", "--out", str(tmp_path / "o")]) == 0
    page = tmp_path / "o" / "index.html"
    flags = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1800"]
    shot = tmp_path / "o" / "screenshot.png"
    subprocess.run(flags + [f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    dom = subprocess.run(flags + ["--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120, check=True)
    tags = parse(dom.stdout).tags
    body = next(a for t, a in tags if t == "body")
    assert body.get("data-ready") == "1" and "data-js-error" not in body and "data-pwned" not in body
    assert sum(t == "table" for t, _ in tags) == 5
    assert not any(t == "img" and a.get("src") == "x" for t, a in tags)
    console = [ln for ln in dom.stderr.splitlines() if re.search(r"CONSOLE|Uncaught", ln)]
    assert not console, console


def _section_headers(page: str, key: str) -> list[tuple[str, str]]:
    """(class, text) of the header cells of table ``t-<key>`` in the page."""
    body = page.split(f'id="t-{key}"', 1)[1].split("</thead>", 1)[0]
    return re.findall(r'<th class="([^"]*)"[^>]*>([^<]*)</th>', body)


def test_the_runs_own_datasets_come_first_in_the_html_table():
    """A run on the user's own folder and one on RESISC45: on a 1400 px page the six paper columns used to push the
    user's column out of view; now the runs' datasets lead, then the papers' other datasets in catalog order."""
    recs = [knn_record(ds="resisc45", avg=70.0),
            knn_record(ds="mydata", avg=60.0, dataset={"name": "mydata", "protocol_dataset": None, "kind": "scene",
                                                        "is_subset": False, "in_catalog": False})]
    page = render_document(build_tables(recs, "knn"), "html")
    heads = _section_headers(page, "knn")
    values = [(c, h) for c, h in heads if "num" in c]
    assert [h for _, h in values] == ["RESISC45", "mydata", "EuroSAT", "UC Merced", "WHU-RS19", "RS-C11", "SIRI-WHU"]
    assert [c for c, _ in values[:2]] == ["num own", "num own"] and all(c == "num" for c, _ in values[2:])
    assert [h for c, h in heads if c == "lab"] == ["model", "source", "protocol", "settings", "vs paper"]
    # every row's cells follow the same order: the run's number sits under its own header
    body = page.split('id="t-knn"', 1)[1].split("</table>", 1)[0]
    (run_row,) = [r for r in body.split("<tr ")[1:] if r.startswith('class="run"')]  # one entry, two datasets
    cells = re.findall(r'<td class="num[^"]*" data-sort="([^"]*)"', run_row)
    assert cells[:2] == ["70.0", "60.0"] and cells[2:] == [""] * 5
    # the markdown keeps the papers' column order
    md = render_document(build_tables(recs, "knn"), "md").splitlines()[2]
    assert md.index("EuroSAT") < md.index("RESISC45") < md.index("mydata")
