"""tools/plot_metrics.py and tools/collect_results.py on two small fake run directories."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kdzoo.reports import run_labels, summarize_run, summarize_runs
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
    assert (
        done.stderr == f"kdzoo: error: {tmp_path / 'nowhere'} is not a kdzoo run: no such folder\n"
    )
    assert done.stdout == ""


def test_collect_results_skips_folders_that_are_not_runs(runs, tmp_path):
    evaluation = tmp_path / "eval"  # an --eval-only folder: config, no metrics
    evaluation.mkdir()
    (evaluation / "config.yaml").write_text((runs[0] / "config.yaml").read_text())
    no_config = tmp_path / "no_config"
    no_config.mkdir()
    (no_config / "metrics.json").write_text((runs[0] / "metrics.json").read_text())
    broken = write_run(tmp_path, "broken", "kd", "resnet32", [1.0, 2.0])
    with open(broken / "metrics.json", "a") as f:
        f.write('{"iteration": 11, "loss_cls"\n')
    empty = tmp_path / "empty"
    empty.mkdir()
    folders = [evaluation, runs[0], no_config, broken, empty, runs[1]]
    done = run_tool("collect_results.py", *map(str, folders), "--markdown")
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        f"kdzoo: skipped {evaluation}: no metrics.json",
        f"kdzoo: skipped {no_config}: no config.yaml",
        f"kdzoo: skipped {broken}: {broken / 'metrics.json'}:6: not a JSON object",
        f"kdzoo: skipped {empty}: no config.yaml or metrics.json",
    ]
    _, _, *body = done.stdout.strip().splitlines()
    assert [markdown_cells(line)[0] for line in body] == ["resnet8_vanilla", "resnet32_resnet8_kd"]


def test_collect_results_fails_when_no_folder_is_a_run(runs, tmp_path):
    (runs[0] / "metrics.json").unlink()
    done = run_tool("collect_results.py", str(runs[0]), str(tmp_path / "nowhere"))
    assert done.returncode == 2
    assert done.stderr == (
        f"kdzoo: error: none of the 2 RUN_DIRs is a kdzoo run: {runs[0]}: no metrics.json; "
        f"{tmp_path / 'nowhere'}: no such folder\n"
    )


def method_runs(root: Path, name: str = "resnet56_resnet20") -> list[Path]:
    """Two runs of one teacher-student pair that differ only in their method's folder."""
    folders = []
    for method, top1 in (("kd", [50.0, 60.0]), ("crd", [55.0, 65.0])):
        (root / method).mkdir(parents=True)
        folders.append(write_run(root / method, name, method, "resnet56", top1))
    return folders


def test_runs_sharing_a_folder_name_get_the_shortest_distinct_paths(runs, tmp_path):
    kd, crd = method_runs(tmp_path / "output" / "cifar100", name="resnet56_resnet20")
    assert run_labels([kd, crd]) == ["kd/resnet56_resnet20", "crd/resnet56_resnet20"]
    assert run_labels([kd, runs[0]]) == ["resnet56_resnet20", "resnet8_vanilla"]  # names differ
    assert run_labels([kd / "metrics.json", kd]) == ["resnet56_resnet20"] * 2  # one run twice
    nested = tmp_path / "x" / "kd" / "resnet56_resnet20"  # ends like kd, one folder up differs
    nested.mkdir(parents=True)
    assert run_labels([kd, nested, crd]) == [
        "cifar100/kd/resnet56_resnet20",
        "x/kd/resnet56_resnet20",
        "crd/resnet56_resnet20",
    ]
    rows, skipped = summarize_runs([kd, crd])
    assert [r["run"] for r in rows] == ["kd/resnet56_resnet20", "crd/resnet56_resnet20"]
    assert [r["distiller"] for r in rows] == ["kd", "crd"] and skipped == {}


def drawn_figures(monkeypatch) -> list:
    """The figures plot_runs draws, kept as it draws them."""
    from kdzoo.reports import plotting

    figures, draw = [], plotting.draw_runs

    def draw_and_keep(runs, keys):
        figures.append(draw(runs, keys))
        return figures[-1]

    monkeypatch.setattr(plotting, "draw_runs", draw_and_keep)
    return figures


def lines_of(figure, title: str) -> dict:
    """``{label: Line2D}`` of the subplot titled ``title``."""
    [ax] = [ax for ax in figure.axes if ax.get_title() == title]
    return {line.get_label(): line for line in ax.get_lines()}


def test_plot_draws_every_run_of_a_pair_trained_with_two_methods(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason="plot_metrics needs matplotlib")
    from kdzoo.reports import plot_runs

    figures = drawn_figures(monkeypatch)
    kd, crd = method_runs(tmp_path)
    plot_runs([kd, crd], tmp_path / "curves.png", ["test/top1"])
    top1 = lines_of(figures[0], "test/top1")
    assert list(top1) == ["kd/resnet56_resnet20", "crd/resnet56_resnet20"]
    assert list(top1["crd/resnet56_resnet20"].get_ydata()) == [55.0, 65.0]
    done = run_tool("plot_metrics.py", str(kd), str(crd), "--output", str(tmp_path / "t.png"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("for 2 run(s)")


def test_a_single_evaluation_is_drawn_as_a_dot(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason="plot_metrics needs matplotlib")
    from kdzoo.reports import plot_runs

    figures = drawn_figures(monkeypatch)
    once = write_run(tmp_path, "once", "kd", "resnet32", [50.0, 60.0])
    lines = (once / "metrics.json").read_text().splitlines()
    (once / "metrics.json").write_text("\n".join(lines[:2]) + "\n")  # stopped after one eval
    twice = write_run(tmp_path, "twice", "kd", "resnet32", [40.0, 45.0])
    plot_runs([once, twice], tmp_path / "curves.png", ["test/top1", "loss_cls"])
    top1 = lines_of(figures[0], "test/top1")
    assert (top1["once"].get_marker(), list(top1["once"].get_ydata())) == ("o", [50.0])
    assert top1["twice"].get_marker() in ("None", "")  # two points: a plain line
    assert lines_of(figures[0], "loss_cls")["once"].get_marker() in ("None", "")


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
