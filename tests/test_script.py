"""The lesson end to end: `python rnn_scratch.py` in a subprocess, and a side-effect-free import."""
import os
import subprocess
import sys

import pytest

from conftest import whole_chapter_run
from lesson_support import CHAPTERS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "rnn_scratch.py")
CHAPTER_2 = os.path.join(ROOT, "gated_rnn_scratch.py")


def run(args, cwd, timeout=300):
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONDONTWRITEBYTECODE="1")
    env.pop("DISPLAY", None)  # as in CI: no display
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


@whole_chapter_run
def test_script_runs_problems_in_order_and_writes_the_plot(tmp_path):
    # One run of the whole lesson (about a minute): Problem 3 with --epochs 3 and without
    # --quiet, so it prints one line per epoch.
    plots = tmp_path / "my_plots"
    result = run([SCRIPT, "--plots-dir", str(plots), "--epochs", "3"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Matches expected: True" in out, out
    assert "All below 1e-7: True" in out, out
    headers = [out.index(f"Problem {k}:") for k in (1, 2, 3)]
    assert headers == sorted(headers), out
    assert "validation accuracy before training" in out and "after epoch 1:" in out
    epoch_lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    # the log shows the first, every fifth and the last epoch: of 3, the first and the last
    assert [line.split()[1] for line in epoch_lines] == ["1/3", "3/3"], out
    assert "val_accuracy" in epoch_lines[0], out
    # Every yes/no check the lesson prints backs a sentence of its prose: none may come out False.
    checks = [line for line in out.splitlines() if line.rstrip().endswith(("True", "False"))]
    assert len(checks) >= 9 and not any("False" in line for line in checks), "\n".join(checks)
    expected = {"unrolled_rnn.png", "training_loss_curve.png", "gradient_flow.png", "accuracy_vs_length.png",
                "hidden_states.png", "clipping.png"}
    assert {p.name for p in plots.iterdir()} == expected
    assert (plots / "training_loss_curve.png").stat().st_size > 10_000
    assert os.listdir(tmp_path) == ["my_plots"]  # nothing else written


@pytest.mark.parametrize("verbose", [True, False])
def test_problem_3_prints_one_line_per_epoch_only_when_verbose(verbose, capsys, tmp_path):
    import rnn_scratch as rs   # --quiet reaches Problem 3 as verbose=False

    rs.run_problem_3(epochs=2, n_sequences=8, verbose=verbose, plots_dir=str(tmp_path))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert len(lines) == (2 if verbose else 0)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_importing_has_no_side_effects(tmp_path, chapter):
    code = f"import sys, {chapter}; print('matplotlib' in sys.modules)"
    result = run(["-c", code], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "False\n"  # nothing printed but our own line; pyplot not even imported
    assert result.stderr == ""
    assert os.listdir(tmp_path) == []


def test_a_mistyped_option_is_an_error_not_ignored(tmp_path):
    result = run([SCRIPT, "--epohcs", "3", "--plots-dir", str(tmp_path)], cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert "unrecognized arguments: --epohcs 3" in result.stderr
    assert os.listdir(tmp_path) == []  # stopped before doing anything


def test_chapter_2_runs_headless_with_its_options(tmp_path):
    # The full chapter runs in the notebook test; here its command line, on one short length and seed.
    plots = tmp_path / "p"
    result = run([CHAPTER_2, "--plots-dir", str(plots), "--quiet", "--lengths", "20", "--seeds", "1"],
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "All below 1e-7: True" in out
    assert [out.index(f"Section {k}:") for k in (5, 6, 7, 8)] == sorted(out.index(f"Section {k}:") for k in (5, 6, 7, 8))
    assert {p.name for p in plots.iterdir()} == {"gated_accuracy_vs_length.png", "gated_gradient_flow.png",
                                                 "lstm_cell_state.png"}
    assert os.listdir(tmp_path) == ["p"]
    # Every bad option stops the chapter before it does anything, with a message that names it.
    for args, message in [(["--lengths", "20,x"], "argument --lengths: must be integers"),
                          (["--lengths", "5"], "argument --lengths: must each be at least 6"),
                          (["--seeds", "0"], "argument --seeds: must be at least 1"),
                          (["--seeds", "two"], "argument --seeds: must be an integer")]:
        bad = run([CHAPTER_2, *args, "--plots-dir", str(tmp_path / "bad")], cwd=tmp_path, timeout=60)
        assert bad.returncode == 2 and message in bad.stderr, (args, bad.stderr)
    assert os.listdir(tmp_path) == ["p"]


def test_an_integer_verbose_logs_the_first_every_kth_and_the_last_epoch():
    import lesson_support as support
    assert [e for e in range(1, 8) if support.log_this_epoch(3, e, 7)] == [1, 3, 6, 7]
    assert [e for e in range(1, 4) if support.log_this_epoch(True, e, 3)] == [1, 2, 3]
    assert not any(support.log_this_epoch(False, e, 3) for e in range(1, 4))
    with pytest.raises(ValueError, match="verbose must be True, False or a positive integer"):
        support.log_this_epoch(0.5, 1, 3)
