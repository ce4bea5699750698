"""tools/plot_metrics.py and tools/collect_results.py on two small fake run directories."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kdzoo.reports import summarize_run
from kdzoo.utils.errors import KdzooError
from kdzoo_testing import REPO_ROOT

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_run(root: Path, name: str, method: str, teacher: str, top1: list[float]) -> Path:
    """A run dir as the engine writes it: 10 iterations, a log line every 2, an eval every 4."""
    run = root / name
    run.mkdir()
    cfg = {
        "DISTILLER": {"NAME": method},
        "MODEL": {"TEACHER": {"NAME": teacher, "WEIGHTS": ""}, "STUDENT": {"NAME": "resnet8"}},
        "SEED": 7,
    }
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    evals = iter(top1)
    lines = []
    for it in range(1, 10, 2):
        record = {"iteration": it, "loss_cls": 2.0 / it, "total_loss": 3.0 / it, "lr": 0.05}
        if method == "kd":
            record["loss_kd"] = 1.0 / it
        if it % 4 == 3:
            record.update({"test/top1": next(evals), "test/top5": 90.0})
        lines.append(json.dumps(record))
    (run / "metrics.json").write_text("\n".join(lines) + "\n")
    return run


@pytest.fixture
def runs(tmp_path) -> list[Path]:
    return [
        write_run(tmp_path, "resnet8_vanilla", "vanilla", "", [40.0, 35.5]),
        write_run(tmp_path, "resnet32_resnet8_kd", "kd", "resnet32", [42.5, 47.25]),
    ]


def run_tool(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / name), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_summarize_run(runs):
    vanilla, kd = (summarize_run(r) for r in runs)
    assert vanilla == {
        "run": "resnet8_vanilla",
        "distiller": "vanilla",
        "teacher": None,
        "student": "resnet8",
        "seed": 7,
        "iterations": 10,
        "last_top1": 35.5,
        "best_top1": 40.0,
    }
    assert (kd["teacher"], kd["last_top1"], kd["best_top1"]) == ("resnet32", 47.25, 47.25)


def test_run_without_evaluations_has_no_top1(tmp_path):
    run = write_run(tmp_path, "early", "kd", "resnet32", [50.0, 60.0])
    first_line = (run / "metrics.json").read_text().splitlines()[0]  # iteration 1, before evals
    (run / "metrics.json").write_text(first_line + "\n")
    summary = summarize_run(run)
    assert summary["last_top1"] is None and summary["best_top1"] is None
    assert summary["iterations"] == 2


def test_malformed_metrics_name_the_line(runs):
    with open(runs[0] / "metrics.json", "a") as f:
        f.write('{"iteration": 11, "loss_cls"\n')
    with pytest.raises(KdzooError, match=r"metrics.json:6"):
        summarize_run(runs[0])


def markdown_cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_collect_results_markdown(runs):
    done = run_tool("collect_results.py", *map(str, runs), "--markdown")
    assert done.returncode == 0, done.stderr
    header, separator, *body = done.stdout.strip().splitlines()
    columns = [
        "run",
        "distiller",
        "teacher",
        "student",
        "seed",
        "iterations",
        "last_top1",
        "best_top1",
    ]
    assert markdown_cells(header) == columns
    assert set(separator) <= set("|-: ")  # the GitHub separator line
    rows = {cells[0]: cells for cells in map(markdown_cells, body)}
    assert rows["resnet8_vanilla"][1:] == ["vanilla", "-", "resnet8", "7", "10", "35.50", "40.00"]
    assert rows["resnet32_resnet8_kd"][1:] == [
        "kd",
        "resnet32",
        "resnet8",
        "7",
        "10",
        "47.25",
        "47.25",
    ]


def test_collect_results_reports_a_missing_run(tmp_path):
    done = run_tool("collect_results.py", str(tmp_path / "nowhere"))
    assert done.returncode == 2
    assert "kdzoo: error: no config.yaml" in done.stderr


def test_plot_metrics_writes_a_png(runs, tmp_path):
    pytest.importorskip("matplotlib", reason="plot_metrics needs matplotlib")
    out = tmp_path / "curves.png"
    done = run_tool("plot_metrics.py", *map(str, runs), "--output", str(out))
    assert done.returncode == 0, done.stderr
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 20_000  # six subplots with curves, not an empty canvas
    for key in ("loss_cls", "loss_kd", "total_loss", "lr", "test/top1"):
        assert key in done.stdout


def test_plot_metrics_rejects_a_key_nobody_logged(runs, tmp_path):
    pytest.importorskip("matplotlib", reason="plot_metrics needs matplotlib")
    done = run_tool(
        "plot_metrics.py",
        *map(str, runs),
        "--output",
        str(tmp_path / "x.png"),
        "--keys",
        "loss_nope",
    )
    assert done.returncode == 2
    assert "no run logged 'loss_nope'" in done.stderr
    assert not (tmp_path / "x.png").exists()


def test_a_metrics_json_path_stands_for_its_run(runs, tmp_path):
    pytest.importorskip("matplotlib", reason="plot_metrics needs matplotlib")
    assert summarize_run(runs[1] / "metrics.json") == summarize_run(runs[1])
    out = tmp_path / "one.png"
    done = run_tool("plot_metrics.py", str(runs[0] / "metrics.json"), "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes().startswith(PNG_SIGNATURE)
