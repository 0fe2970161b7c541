"""`track --ray`: checkpoints scored as Ray tasks give the same track as `--jobs`; a failed task is
listed as failed while the others complete; bad combinations are said before any work.

The slow tests start a local Ray instance (`ray.init(num_cpus=2)`) and skip only where Ray is not
installed (the `ray` extra; the test extras include it).
"""

import importlib.util

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from classifier.cli import main

OPTIONS = ["--corpus", "bundled", "--stories", "12", "--bootstrap", "20", "--max-tokens", "64", "--device", "cpu",
           "--ablation-stories", "0", "--no-figures"]


def test_ray_and_jobs_together_are_refused_before_any_work(tmp_path):
    result = CliRunner().invoke(main, ["track", "x", "y", "--jobs", "2", "--ray", "auto",
                                       "--store", str(tmp_path / "s"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "--jobs 2 and --ray" in result.output and len(result.output.strip().splitlines()) == 1


def test_ray_missing_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    result = CliRunner().invoke(main, ["track", "x", "--ray", "--store", str(tmp_path / "s"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "head-roles[ray]" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Three calibration checkpoints of one 'run' and a damaged one, tracked with --jobs 2 and with --ray."""
    ray = pytest.importorskip("ray")
    from classifier.calibrate.planted import build_calibration_model

    root = tmp_path_factory.mktemp("sweep")
    folder = root / "cal-run" / "checkpoints"
    for step, seed in [(0, 0), (50, 1), (100, 2)]:
        build_calibration_model(folder / f"step-{step}", layout="one-layer", seed=seed)
    broken = folder / "step-150"
    broken.mkdir()
    (broken / "config.json").write_text((folder / "step-0" / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    results = {}
    for name, extra in [("jobs", ["--jobs", "2"]), ("ray", ["--ray"])]:
        arguments = ["track", str(folder), *OPTIONS, "--store", str(root / f"store-{name}"),
                     "--out", str(root / f"out-{name}"), *extra]
        if name == "ray":
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            results[name] = CliRunner().invoke(main, arguments)
        finally:
            if name == "ray":
                ray.shutdown()
    return {"root": root, "results": results}


@pytest.mark.slow
def test_ray_gives_the_same_track_csv_as_jobs(sweep):
    root, results = sweep["root"], sweep["results"]
    assert "as Ray tasks" in results["ray"].stderr and "in 2 processes" in results["jobs"].stderr
    by_jobs, by_ray = (pd.read_csv(root / f"out-{name}" / "track.csv") for name in ("jobs", "ray"))
    assert by_jobs.shape == by_ray.shape and by_jobs.groupby("step").size().to_dict() == {0: 16, 50: 16, 100: 16}
    numeric = by_jobs.select_dtypes("number").columns
    assert len(numeric) > 30
    np.testing.assert_allclose(by_ray[numeric].to_numpy(float), by_jobs[numeric].to_numpy(float), rtol=0, atol=1e-6)
    text = by_jobs.columns.difference(numeric)
    pd.testing.assert_frame_equal(by_ray[text].fillna(""), by_jobs[text].fillna(""))


@pytest.mark.slow
def test_a_failed_ray_task_is_listed_as_failed_and_the_others_complete(sweep):
    root, result = sweep["root"], sweep["results"]["ray"]
    assert result.exit_code == 1, result.stderr
    assert result.stdout.strip().endswith("3 model(s) compared, 1 failed")
    failed = (root / "out-ray" / "track.md").read_text().split("## Failed")[1].split("##")[0]
    assert "step-150" in failed and "cannot load" in failed
    stored = sorted(p.name.rsplit("-", 1)[0] for p in (root / "store-ray").iterdir())
    assert stored == ["step-0", "step-100", "step-50"]  # the driver filled the store from the tasks' runs


def test_an_address_where_no_cluster_answers_is_one_line_not_a_long_wait():
    import socket
    import time

    from classifier.errors import InputError
    from classifier.track.cluster import check_reachable

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    began = time.perf_counter()
    with pytest.raises(InputError, match=f"--ray 127.0.0.1:{port}: no Ray cluster answers there"):
        check_reachable(f"127.0.0.1:{port}")
    assert time.perf_counter() - began < 6
    check_reachable("auto")  # left to Ray
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        check_reachable(f"ray://127.0.0.1:{listening.getsockname()[1]}")
