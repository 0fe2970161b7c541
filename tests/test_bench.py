"""The benchmark's measuring children run (`make bench` prints their figures; a path that raises
is printed as "failed" and the benchmark goes on, so nothing else would notice)."""

import json
import os
from pathlib import Path

import pytest

from tools import bench_paths

DEV_4L = Path(__file__).resolve().parents[1] / "devmodels" / "tinystories-4L-dev"


def last_json(text: str) -> dict:
    return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(bench_paths.PATHS))
def test_every_throughput_path_measures_without_an_error(key, capsys):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    bench_paths.path_child(key, DEV_4L, 4, 64, "bundled")
    row = last_json(capsys.readouterr().out)
    assert "error" not in row, row["error"]
    assert row["tokens"] > 0 and row["seconds"] > 0


@pytest.mark.slow
def test_the_floor_child_times_the_scorer_and_its_floor(capsys, monkeypatch):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(bench_paths, "FLOOR_REPEATS", 1)
    bench_paths.floor_child(DEV_4L, 4, 64, "bundled")
    row = last_json(capsys.readouterr().out)
    assert len(row["floor"]) == len(row["scorer"]) == 1
    assert row["tokens"] > 0 and min(row["floor"] + row["scorer"]) > 0
