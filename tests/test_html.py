"""report.html: the page's data on a small synthetic run, and the page itself in a real browser.

The browser test loads the page from disk in headless Chromium (Debian package `chromium`)
with a small harness added around the page's own script: it records every error and console
error, clicks a token, switches to the key view, steps a head with the arrow key and sorts the
table, and writes what it saw into the DOM, which `--dump-dom` hands back. It skips where no
Chromium is installed.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from classifier.render.html import encode_patterns, page_data, render_html
from classifier.registry import METRICS, OFFSETS, PARTS
from classifier.run import ModelInfo, PatternView, Run
from classifier.settings import ScoreSettings

N_LAYERS, N_HEADS = 2, 3
PROMPT_TOKENS = ("<s>", " One", " day", ",", " Lucy", " asks", " Tom", ":", ' "', "I", "</script>")


def causal_patterns(n_tokens: int, seed: int) -> np.ndarray:
    """(L, H, T, T) rows that sum to 1 over j <= i; head (0, 0) is an exact previous-token head."""
    rng = np.random.default_rng(seed)
    scores = rng.random((N_LAYERS, N_HEADS, n_tokens, n_tokens)) + np.tril(np.ones((n_tokens, n_tokens)))
    patterns = np.tril(scores)
    patterns /= patterns.sum(-1, keepdims=True)
    patterns[0, 0] = np.eye(n_tokens, k=-1)
    patterns[0, 0, 0, 0] = 1.0
    return patterns.astype(np.float16)


def synthetic_run() -> Run:
    heads = [(layer, head) for layer in range(N_LAYERS) for head in range(N_HEADS)]
    rng = np.random.default_rng(0)
    metrics = pd.DataFrame(heads, columns=["layer", "head"])
    for m in METRICS:
        metrics[m] = rng.uniform(0.05, 0.6, len(heads))
        metrics[f"{m}_lo"], metrics[f"{m}_hi"] = metrics[m] - 0.02, metrics[m] + 0.02
        metrics[f"{m}_lift"] = rng.uniform(0.2, 40, len(heads))
    for k in OFFSETS:
        metrics[f"argmax_offset_{k}"] = 1.0 / len(OFFSETS)
    roles = pd.DataFrame({
        "layer": [h[0] for h in heads], "head": [h[1] for h in heads],
        "role": ["previous-token", "start-of-text", "unclear", "delimiter", "broad", "positional"],
        "secondary": [("local",), (), (), ("proper-noun", "previous-token"), (), ()],
        "confidence": [1.0, 0.9, 0.5, 0.7, 0.8, 0.95], "strength": [0.9, 0.6, np.nan, 0.3, 0.8, 0.95],
        "offset": [1, 2, 2, 2, 2, 3],
    })
    roles = roles.assign(explained=[0.8, 0.6, np.nan, 0.2, 0.3, 0.5], lift=[30.0, 5, np.nan, 4, 1.2, 9],
                         margin=[0.5, 0.3, np.nan, 0.05, 0.1, 0.2], stability=[1.0, 0.9, 0.5, 0.7, 0.8, 0.95],
                         sink=[0.1, 0.6, 0.3, 0.05, 0.0, 0.2])
    pairs = pd.DataFrame({"layer": [0, 0, 1], "head": [0, 0, 0], "query": [" Tom", ",", "."],
                          "key": [" asks", " day", "<b>"], "part": ["previous", "rest", "other_delimiter"],
                          "count": [9, 4, 3], "share": [0.3, 0.1, 0.2]})
    prompt = PatternView("One day, Lucy asks Tom: \"I</script>", PROMPT_TOKENS, causal_patterns(len(PROMPT_TOKENS), 1))
    story_tokens = ("<s>", " Once", " upon", "\n", " time", ".")
    story = PatternView("Once upon\n time.", story_tokens, causal_patterns(len(story_tokens), 2))
    budget = pd.DataFrame(heads, columns=["layer", "head"])
    # each head's attention split over the budget parts, summing to 1, with uniform's beside it
    shares, uniform = rng.dirichlet(np.ones(len(PARTS)), len(heads)), rng.dirichlet(np.ones(len(PARTS)), len(heads))
    for k, part in enumerate(PARTS):
        budget[part], budget[f"{part}_uniform"] = shares[:, k], uniform[:, k]
    return Run(
        model=ModelInfo("tiny <model>", "tiny <model>", None, N_LAYERS, N_HEADS, 512, "cpu"),
        corpus={"name": "bundled", "source": "corpora/bundled.txt", "stories": 2, "sample_indices": [4, 7]},
        settings=ScoreSettings(stories=2, bootstrap=10), n_tokens=100, metrics=metrics,
        budget=budget, roles=roles, pairs=pairs, prompt=prompt,
        prompt_metrics=metrics, prompt_roles=roles, stories=(story,), notices=("a notice <b>",), command="head-roles report",
    )


def embedded_data(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="run-data">(.*?)</script>', page, re.S)
    return json.loads(found.group(1))


def test_patterns_are_the_lower_triangle_in_uint8_row_by_row():
    patterns = np.zeros((1, 2, 3, 3), np.float16)
    patterns[0, 1] = [[1, 0, 0], [0.5, 0.5, 0], [0.2, 0.2, 0.6]]
    decoded = np.frombuffer(base64.b64decode(encode_patterns(patterns)), np.uint8)
    # 6 weights per head (rows of 1, 2 and 3); head 0 is all zeros.
    assert decoded.tolist() == [0] * 6 + [255, 128, 128, 51, 51, 153]


def test_page_holds_every_head_text_and_column():
    run = synthetic_run()
    data = page_data(run)
    assert [(h["layer"], h["head"]) for h in data["heads"]] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert [t["name"] for t in data["texts"]] == ["prompt", "story 1"]
    assert data["texts"][0]["tokens"] == list(PROMPT_TOKENS)
    assert "story #4 of bundled" in data["texts"][1]["note"]
    titles = [c[1] for c in data["columns"]]
    assert titles[:5] == ["Head", "Layer", "Role", "Also", "Confidence"]
    assert set(METRICS) <= set(titles)
    first = data["heads"][0]
    assert first["role"] == "previous-token" and first["secondary"] == ["local"]
    # pairs saved without top_rate and weight (older runs) carry None for them
    assert first["pairs"] == [[" Tom", " asks", 0.3, "previous token", None, None], [",", " day", 0.1, "farther back", None, None]]
    assert data["heads"][2]["explained"] is None  # unclear: nothing explained


def test_role_measures_become_columns_and_the_explained_share():
    data = page_data(synthetic_run())
    budget = data["heads"][1]["budget"]
    assert [p for p, _ in budget] == list(PARTS) and sum(s for _, s in budget) == pytest.approx(1, abs=1e-3)
    titles = [c[1] for c in data["columns"]]
    assert titles[5:10] == ["Explained", "Lift", "Margin", "Sink", "Stability"]  # report.md's titles
    assert data["heads"][0]["explained"] == 0.8
    assert data["heads"][0]["facts"][:3] == [["80%", "of attention the label explains"],
                                             ["30x", "over uniform attention"], ["50%", "lead over the next role"]]


def test_page_is_self_contained_and_escapes_text():
    page = render_html(synthetic_run())
    assert not re.search(r'<(script|link|img)[^>]+(src|href)=["\']?(https?:)?//', page)  # nothing fetched
    assert "tiny &lt;model&gt;" in page and "a notice &lt;b&gt;" in page
    assert page.count("</script>") == 2  # data and script: the "</script>" token cannot close its element
    assert embedded_data(page)["texts"][0]["tokens"][-1] == "</script>"


def test_a_forty_head_page_stays_small():
    """40 heads on a 52-token prompt and three 96-token stories: well under 5 MB."""
    run = synthetic_run()
    big = np.full((5, 8, 96, 96), 0.01, np.float16)
    story = PatternView("s", tuple(f"t{i}" for i in range(96)), big)
    prompt = PatternView("p", tuple(f"p{i}" for i in range(52)), big[:, :, :52, :52])
    encoded = sum(len(encode_patterns(v.patterns)) for v in (prompt, story, story, story))
    assert encoded < 3_000_000


def test_report_files_include_report_html(tmp_path):
    from classifier.render.report import render_run, write_report

    run = synthetic_run()
    write_report(run, tmp_path / "run", figures=False)
    assert (tmp_path / "run" / "report.html").is_file()
    (tmp_path / "run" / "report.html").unlink()
    render_run(tmp_path / "run", figures=False)  # re-rendering a saved run writes it again
    assert embedded_data((tmp_path / "run" / "report.html").read_text())["texts"][0]["tokens"] == list(PROMPT_TOKENS)


# ---- the page in a real browser

def chromium() -> str | None:
    return next((path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))), None)


HARNESS_HEAD = """<script>
window.__errors = [];
window.addEventListener("error", (e) => window.__errors.push("error: " + e.message));
const __consoleError = console.error;
console.error = (...args) => { window.__errors.push("console: " + args.join(" ")); __consoleError(...args); };
</script>"""
# The end of every harness: what it saw (`out`) and the errors, into the DOM that --dump-dom returns.
HARNESS_RESULT = """  out.errors = window.__errors;
  const pre = document.createElement("pre");
  pre.id = "harness-result";
  pre.textContent = JSON.stringify(out);
  document.body.append(pre);"""
HARNESS_TAIL = """<script>
(() => {
  const out = { ready: document.body.dataset.ready || "no" };
  const backgrounds = () => Array.from(document.querySelectorAll("#tokens .tok"), (s) => s.style.background);
  const focus = () => Array.from(document.querySelectorAll("#tokens .tok")).findIndex((s) => s.classList.contains("focus"));
  try {
    out.rows = document.querySelectorAll("#roles tbody tr").length;
    out.thumbs = document.querySelectorAll("#overview .thumb").length;
    out.tokens = Array.from(document.querySelectorAll("#tokens .tok"), (s) => s.textContent);
    out.title = document.querySelector("#card .name").textContent;
    out.budgetParts = document.querySelectorAll("#card .budget div").length;
    out.before = backgrounds(); out.focusBefore = focus();
    document.querySelectorAll("#tokens .tok")[3].click();
    out.after = backgrounds(); out.focusAfter = focus();
    out.readout = document.getElementById("readout").textContent;
    document.querySelector('#modes button[data-mode="key"]').click();
    out.keyView = backgrounds();
    out.keyReadout = document.getElementById("readout").textContent;
    document.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight", bubbles: true }));
    out.titleAfterArrow = document.querySelector("#card .name").textContent;
    document.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowDown", bubbles: true }));
    out.titleAfterDown = document.querySelector("#card .name").textContent;
    const roleColumn = Array.from(document.querySelectorAll("#roles th")).find((th) => th.textContent === "Role");
    roleColumn.click();
    out.sortedRoles = Array.from(document.querySelectorAll("#roles tbody tr"), (tr) => tr.children[2].textContent);
    document.querySelectorAll("#texts button")[1].click();
    out.storyTokens = document.querySelectorAll("#tokens .tok").length;
    const pattern = document.getElementById("pattern");
    out.patternSize = [pattern.width, pattern.height];
  } catch (err) { window.__errors.push("harness: " + err.message); }
""" + HARNESS_RESULT + """
})();
</script>"""


def run_in_chromium(page_path, browser: str) -> tuple[dict, str]:
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--enable-logging=stderr",
         "--v=0", "--virtual-time-budget=3000", "--dump-dom", page_path.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    found = re.search(r'<pre id="harness-result">(.*?)</pre>', result.stdout, re.S)
    assert found, f"no harness result; chromium said: {result.stderr[-2000:]}"
    import html as html_module

    return json.loads(html_module.unescape(found.group(1))), result.stderr


def test_page_works_in_headless_chromium(tmp_path):
    browser = chromium()
    if browser is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium)")
    page = render_html(synthetic_run())  # with the budget bar
    page = page.replace("<head>", "<head>\n" + HARNESS_HEAD, 1).replace("</body>", HARNESS_TAIL + "\n</body>", 1)
    path = tmp_path / "report.html"
    path.write_text(page)
    seen, log = run_in_chromium(path, browser)

    assert seen["errors"] == [] and "Uncaught" not in log
    assert seen["ready"] == "yes"
    assert seen["rows"] == seen["thumbs"] == N_LAYERS * N_HEADS
    assert seen["tokens"][0] == "BOS" and seen["tokens"][-1] == "</script>"
    assert seen["title"] == "Head 0.0" and seen["budgetParts"] >= 1
    # By default the last token is the query; head 0.0 is an exact previous-token head.
    assert seen["focusBefore"] == len(PROMPT_TOKENS) - 1 and seen["focusAfter"] == 3
    assert seen["before"] != seen["after"]
    assert seen["readout"].startswith("Query ⟨,⟩@3 attends to ⟨ day⟩@2 100%")  # token 3 attends to token 2
    assert seen["keyView"] != seen["after"] and "is attended by" in seen["keyReadout"]
    assert seen["keyReadout"].startswith("Key ⟨,⟩@3 is attended by ⟨ Lucy⟩@4 100%")  # the other way round
    assert seen["titleAfterArrow"] == "Head 0.1" and seen["titleAfterDown"] == "Head 1.1"
    assert seen["sortedRoles"] == sorted(seen["sortedRoles"])
    assert seen["storyTokens"] == 6
    assert seen["patternSize"][0] >= 6 * 2
