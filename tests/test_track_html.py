"""track.html: the page's data on a small synthetic track, and the page itself in a real browser.

The synthetic track is what `track_report.track_table` makes of fake runs: a training run `dev
<run>` (2 layers x 2 heads, steps 0, 50, 100) and a lone one-layer model of 3 heads (no step),
matched to the run's last checkpoint by metric profile. The browser test loads the page from
disk in headless Chromium with a small harness around the page's own script (as
tests/test_html.py does): it records errors, steps with the arrow key, clicks a head and writes
what it saw into the DOM, which `--dump-dom` hands back. It skips where no Chromium is installed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from classifier.cli import main
from classifier.errors import InputError
from classifier.render.html import ROLE_COLORS
from classifier.registry import METRICS
from classifier.settings import ScoreSettings
from classifier.track.tracking import TrackedModel, Tracking, compare_models
from classifier.track.html import page_data, render_track_html
from classifier.track.report import track_files, track_table
from classifier.track.store import model_spec
from test_html import HARNESS_HEAD, chromium, run_in_chromium

RUN = "dev <run>"
STEPS = (0, 50, 100)
# Heads 0.0 .. 1.1 of the run at each step; 0.1 settles at 50, 1.0 leaves its final role and comes back.
RUN_ROLES = (
    ["unclear", "broad", "previous-token", "broad"],
    ["previous-token", "start-of-text", "broad", "copy-suppression"],
    ["previous-token", "start-of-text", "previous-token", "copy-suppression"],
)


def fake_model(series, step, roles, *, n_layers, explained=None, seed=0):
    rng = np.random.default_rng(seed)
    n_heads = len(roles) // n_layers
    index = {"layer": [k // n_heads for k in range(len(roles))], "head": [k % n_heads for k in range(len(roles))]}
    frame = pd.DataFrame({**index, "role": roles, "secondary": [()] * len(roles), "confidence": 0.9})
    if explained is not None:
        frame["explained"], frame["lift"] = explained, 5.0
    metrics = pd.DataFrame({**index, **{m: rng.random(len(roles)) for m in METRICS},
                            **{f"{m}_lift": 1 + rng.random(len(roles)) for m in METRICS}})
    run = SimpleNamespace(roles=frame, metrics=metrics, model=SimpleNamespace(n_layers=n_layers, n_heads=n_heads))
    label = f"{series}/step-{step}" if step is not None else series
    return TrackedModel(label, model_spec(label), "reused", run=run, series=series, step=step, path=f"store/{label}")


def synthetic_tracking() -> Tracking:
    run = [fake_model(RUN, s, roles, n_layers=2, explained=[0.8, 0.5, 0.3, 0.1], seed=k)
           for k, (s, roles) in enumerate(zip(STEPS, RUN_ROLES))]
    lone = fake_model("lone", None, ["previous-token", "broad", "unclear"], n_layers=1, seed=1)  # 1 x 3
    # its heads 0 and 1 have the metric profiles of the run's last heads 1.1 and 0.0: matched
    last = run[-1].run.metrics.set_index(["layer", "head"])
    lone.run.metrics.loc[:1, METRICS] = last.loc[[(1, 1), (0, 0)], list(METRICS)].to_numpy()
    models = [*run, lone]
    comparisons = [compare_models(run[0], run[1]), compare_models(run[1], run[2]), compare_models(run[2], lone)]
    return Tracking(models, {"name": "bundled", "source": "x", "stories": 3}, ScoreSettings(), "consecutive",
                    Path("store"), comparisons)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return track_table(synthetic_tracking())


def embedded_data(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="track-data">(.*?)</script>', page, re.S)
    return json.loads(found.group(1))


def test_every_model_step_and_head_is_in_the_page(table):
    data = page_data(table)
    run, lone = data["models"]
    assert [run["name"], lone["name"]] == [RUN, "lone"]
    assert [c["step"] for c in run["checkpoints"]] == list(STEPS)
    assert [c["step"] for c in lone["checkpoints"]] == [None] and lone["checkpoints"][0]["name"] == "lone"
    assert [h["label"] for h in run["heads"]] == ["0.0", "0.1", "1.0", "1.1"]
    assert [h["label"] for h in lone["heads"]] == ["0", "1", "2"]  # one layer: the head alone
    assert [[cell[0] for cell in cells] for cells in run["cells"]] == [list(r) for r in RUN_ROLES]
    assert run["cells"][0][0][1:5] == [0.8, 5.0, run["cells"][0][0][3], 0.9]  # role, explained, lift, headline, confidence
    assert run["cells"][0][0][5:7] == [None, None]  # no ablation or attribution measured in that table
    assert run["cells"][0][0][7] == "?"  # the code as written: unclear's code, never starred
    assert lone["cells"][0][0][1] is None  # no share explained in that run: null, not NaN


def test_a_head_s_settling_step_and_first_appearance(table):
    run, lone = page_data(table)["models"]
    by_label = dict(zip((h["label"] for h in run["heads"]), run["settled"]))
    assert by_label["0.0"] == {"final": "previous-token", "settled": 50, "first": 50, "changes": 1}
    assert by_label["1.0"] == {"final": "previous-token", "settled": 100, "first": 0, "changes": 2}
    assert lone["settled"] == [None, None, None]  # one checkpoint: nothing to settle


def test_roles_have_report_html_s_colours_and_unknown_roles_their_name(table):
    from matplotlib.colors import to_hex

    from classifier.track.figures import role_colours

    roles = page_data(table)["roles"]
    assert all(roles[r]["color"] == c for r, c in ROLE_COLORS.items())
    assert all(to_hex(rgb) == ROLE_COLORS[r] for r, rgb in role_colours().items())  # the figures' too
    assert roles["copy-suppression"]["code"] == "copy-suppression" and roles["previous-token"]["code"] == "PREV"
    assert roles["previous-token"]["headline"] == "previous" and roles["previous-token"]["share"]


def test_the_lone_model_shows_the_head_it_was_matched_with(table):
    run, lone = page_data(table)["models"]
    assert lone["checkpoints"][0]["compared_with"] == f"{RUN}/step-100" and lone["checkpoints"][0]["match"] == "similarity"
    assert [m[:2] for m in lone["matches"][0][:2]] == [["1.1", "copy-suppression"], ["0.0", "previous-token"]]
    assert lone["matches"][0][0][2] == pytest.approx(1.0)  # the same profile: similarity 1
    assert run["matches"][1] == [None] * 4  # checkpoints of one run: the same head, nothing to show


def test_page_is_self_contained_and_escapes_text(table):
    page = render_track_html(table, title="Roles <over> steps", command="head-roles track 'a</script>'")
    assert not re.search(r'<(script|link|img|a)[^>]+(src|href)=["\']?(https?:)?//', page)  # nothing fetched
    assert "<title>Roles &lt;over&gt; steps</title>" in page and "dev &lt;run&gt;" in page
    assert "a&lt;/script&gt;" in page and page.count("</script>") == 2  # data and script only
    assert embedded_data(page)["models"][0]["name"] == RUN


def test_a_table_without_the_track_columns_is_rejected():
    with pytest.raises(InputError, match="checkpoint, step"):
        page_data(pd.DataFrame({"model": ["m"], "role": ["broad"]}))


def test_track_files_include_track_html_named_in_track_md():
    files = track_files(synthetic_tracking(), command="head-roles track dev", figures=False)
    assert embedded_data(files["track.html"].decode())["models"][1]["name"] == "lone"
    assert "`track.html`" in files["track.md"].decode()


def test_a_file_of_yours_named_track_html_stops_track_before_any_model(tmp_path):
    (tmp_path / "track.html").write_text("mine")
    result = CliRunner().invoke(main, ["track", "no-such-model", "--store", str(tmp_path / "s"), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "track.html" in result.output
    assert (tmp_path / "track.html").read_text() == "mine"


# ---- the page in a real browser

HARNESS_TAIL = """<script>
(() => {
  const out = { ready: document.body.dataset.ready || "no" };
  const codes = () => Array.from(document.querySelectorAll("#grid .cell b"), (b) => b.textContent);
  const label = () => document.getElementById("step-label").textContent;
  const key = (k) => document.dispatchEvent(new KeyboardEvent("keydown", { key: k, bubbles: true }));
  try {
    out.labelStart = label();  // opens at the last checkpoint
    key("Home");
    out.cells = document.querySelectorAll("#grid .cell").length;
    out.layers = Array.from(document.querySelectorAll("#grid .layer-label"), (d) => d.textContent);
    out.codes0 = codes(); out.label0 = label();
    out.background = document.querySelector("#grid .cell").style.background;
    key("ArrowRight");
    out.codes1 = codes(); out.label1 = label();
    out.slider = document.getElementById("step").value;
    key("End"); out.labelEnd = label();
    key("ArrowRight"); out.labelPastEnd = label();
    out.counts = Array.from(document.querySelectorAll("#counts tbody tr"), (tr) => [tr.children[0].textContent, tr.children[2].textContent]);
    document.querySelectorAll("#grid .cell")[2].click();
    out.title = document.querySelector("#history .name").textContent;
    out.history = Array.from(document.querySelectorAll("#history tbody tr"), (tr) => [tr.children[0].textContent, tr.children[1].textContent]);
    out.settled = document.querySelector("#history .settled").textContent;
    out.strip = document.querySelectorAll("#history .strip div").length;
    document.querySelectorAll("#history tbody tr")[0].click();
    out.labelAfterRow = label();
    const select = document.getElementById("model");
    out.choiceShown = !document.getElementById("model-choice").hidden;
    select.value = "1"; select.dispatchEvent(new Event("change"));
    out.loneCells = document.querySelectorAll("#grid .cell").length;
    out.loneLabel = label();
    out.sliderDisabled = document.getElementById("step").disabled;
    document.querySelectorAll("#grid .cell")[0].click();
    out.loneHistory = document.querySelectorAll("#history tbody tr").length;
    out.loneMatch = document.querySelector("#history").textContent.includes("Matched by metric profile");
  } catch (err) { window.__errors.push("harness: " + err.message); }
  out.errors = window.__errors;
  const pre = document.createElement("pre");
  pre.id = "harness-result";
  pre.textContent = JSON.stringify(out);
  document.body.append(pre);
})();
</script>"""


def test_page_works_in_headless_chromium(tmp_path, table):
    browser = chromium()
    if browser is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium)")
    page = render_track_html(table, title="Head roles across checkpoints", command=None)
    page = page.replace("<head>", "<head>\n" + HARNESS_HEAD, 1).replace("</body>", HARNESS_TAIL + "\n</body>", 1)
    path = tmp_path / "track.html"
    path.write_text(page)
    seen, log = run_in_chromium(path, browser)

    assert seen["errors"] == [] and "Uncaught" not in log
    assert seen["ready"] == "yes" and seen["cells"] == 4 and seen["layers"] == ["L0", "L1"]
    assert seen["labelStart"].startswith("step 100 ")
    assert seen["codes0"] == ["?", "BROAD", "PREV", "BROAD"] and seen["label0"].startswith("step 0 ")
    assert seen["background"].startswith("rgb(")
    # the right arrow moves to the next checkpoint: another step, other roles
    assert seen["label1"].startswith("step 50 ") and seen["slider"] == "1"
    assert seen["codes1"] == ["PREV", "SOT", "BROAD", "copy-suppression"]
    assert seen["labelEnd"].startswith("step 100 ") and seen["labelPastEnd"] == seen["labelEnd"]
    assert ["previous-token", "2"] in seen["counts"] and ["broad", "0"] in seen["counts"]
    # clicking head 1.0 shows its history over every step, and when its final role settled
    assert seen["title"] == "Head 1.0"
    assert seen["history"] == [["0", "previous-token"], ["50", "broad"], ["100", "previous-token"]]
    assert "first at step 0, holds from step 100 on" in seen["settled"] and seen["strip"] == 3
    assert seen["labelAfterRow"].startswith("step 0 ")
    # the lone 1 x 3 model: its own grid, one checkpoint, the head it was matched with
    assert seen["choiceShown"] and seen["loneCells"] == 3 and seen["sliderDisabled"]
    assert seen["loneLabel"].startswith("lone ") and seen["loneHistory"] == 1 and seen["loneMatch"]
