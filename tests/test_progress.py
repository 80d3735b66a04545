"""The course's progress bars are plain text: they read the same after a notebook is saved and reopened."""

from pathlib import Path

from course_lib import settings

ROOT = Path(__file__).resolve().parent.parent


def test_progress_is_a_text_bar_on_stdout(capsys):
    from tqdm.std import tqdm

    bar = settings.progress(range(3), desc="counting", unit="step")
    assert type(bar) is tqdm and bar.ncols == settings.PROGRESS_COLUMNS
    assert list(bar) == [0, 1, 2]
    out = capsys.readouterr()
    assert "counting: 100%" in out.out and "3/3" in out.out and out.err == ""
    assert all(len(line) <= settings.PROGRESS_COLUMNS for line in out.out.replace("\r", "\n").splitlines())


def test_progress_can_be_disabled_and_takes_tqdm_options(capsys):
    assert list(settings.progress([1, 2], disable=True)) == [1, 2]
    bar = settings.progress(total=10, initial=4, desc="training", ncols=60)
    bar.update(1)
    bar.close()
    out = capsys.readouterr().out
    assert "5/10" in out and bar.ncols == 60


def test_no_course_module_makes_a_widget_bar():
    """tqdm.auto / tqdm.notebook bars are Jupyter widgets: after a reopen they read "model not found"."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "course_lib").rglob("*.py")
        if any(name in path.read_text(encoding="utf-8") for name in ("tqdm.auto", "tqdm.notebook", "ipywidgets"))
        and path.name != "settings.py"
    ]
    assert offenders == []
