"""Everything committed rebuilds from a clone: the data the make targets and tests read is in
the repository, byte-identical to what the committed models were trained on."""

import hashlib
import json
import re
from dataclasses import replace
from pathlib import Path

from devmodels.train import GPT2_TOKENIZER_DIR, MODELS, STORIES_PATH, TOK512_PATH, load_tokenizer, trained_as_configured

ROOT = Path(__file__).resolve().parents[1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_shipped_data_matches_the_digests_its_notices_give():
    assert f"sha256 {sha256(STORIES_PATH)}" in (ROOT / "corpora" / "NOTICE.md").read_text()
    notice = " ".join((GPT2_TOKENIZER_DIR / "NOTICE.md").read_text().split())
    for name in ("vocab.json", "merges.txt"):
        assert f"{name} {sha256(GPT2_TOKENIZER_DIR / name)}" in notice
    assert sha256(TOK512_PATH) in (ROOT / "classifier" / "data" / "NOTICE.md").read_text()


def test_the_shipped_gpt2_tokenizer_gives_gpt2_ids():
    tokenizer = load_tokenizer("gpt-neo")
    # GPT-2's own ids for these texts (shared/data/README.md, and any GPT-2 tokenizer).
    assert tokenizer("Hello world", add_special_tokens=False)["input_ids"] == [15496, 995]
    assert tokenizer("Once upon a time", add_special_tokens=False)["input_ids"] == [7454, 2402, 257, 640]
    assert (len(tokenizer), tokenizer.bos_token_id) == (50257, 50256)


def test_a_committed_model_stays_current_and_other_data_makes_it_stale():
    record = json.loads((ROOT / "devmodels" / "tinystories-4L-dev" / "training.json").read_text())
    config = MODELS["tinystories-4L-dev"]
    assert record["data"]["file"].startswith("shared/")  # trained before the data was committed
    assert trained_as_configured(record, config)
    assert not trained_as_configured(record, replace(config, steps=config.steps + 1))
    other_stories = {**record, "data": {**record["data"], "file": "corpora/other.txt", "sha256": "0" * 64}}
    assert not trained_as_configured(other_stories, config)
    same_by_content = {**record, "data": {**record["data"], "file": "corpora/tinystories-train-2316.txt",
                                         "sha256": sha256(STORIES_PATH), "tokenizer_sha256": sha256(TOK512_PATH)}}
    assert trained_as_configured(same_by_content, config)
    other_tokenizer = {**same_by_content, "data": {**same_by_content["data"], "tokenizer_sha256": "0" * 64}}
    assert not trained_as_configured(other_tokenizer, config)


def test_no_make_target_tool_or_test_reads_shared_data():
    assert "../shared" not in (ROOT / "Makefile").read_text()
    sources = [*(ROOT / "tools").glob("*.py"), *(ROOT / "tests").glob("*.py"), *(ROOT / "devmodels").glob("*.py")]
    # A path built into ../shared/data (the design notes of ../shared may still be read, and skipped).
    readers = [p.name for p in sources if re.search(r"\"shared\" / \"data\"", p.read_text())]
    assert readers == []


def _make_dev_1l(model_dir: Path):
    """`make dev-1l` with no environment of its own (PY, HEAD_ROLES: `true`, so `make devmodels` trains nothing)."""
    import shutil
    import subprocess

    import pytest

    if shutil.which("make") is None:
        pytest.skip("no make")
    return subprocess.run(["make", "--no-print-directory", "dev-1l", "PY=true", "HEAD_ROLES=true", f"DEV_1L={model_dir}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_make_trains_the_1l_model_when_a_clone_lacks_it_or_holds_a_half_written_one(tmp_path):
    half = tmp_path / "1L"  # an interrupted training: checkpoints and even the final config, no training.json
    (half / "checkpoints" / "step-000000").mkdir(parents=True)
    (half / "config.json").write_text("{}")
    for model_dir in (tmp_path / "none", half):
        done = _make_dev_1l(model_dir)
        assert done.returncode == 0, done.stderr
        assert f"{model_dir} is missing: training it first with `make devmodels`" in done.stderr
        assert "true -m devmodels.train --model all" in done.stdout
    (half / "training.json").write_text("{}")  # written last: training finished
    done = _make_dev_1l(half)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
