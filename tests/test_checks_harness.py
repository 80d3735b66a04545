"""The checks' failure as a learner sees it: the message and hint, not the checker's traceback."""

import pickle

import nbformat
import pytest

from course_lib.checks import ExerciseFailed, check_audio_seconds, check_close


def failure(fn):
    with pytest.raises(ExerciseFailed) as info:
        check_audio_seconds(fn)
    return info.value


def not_answered(max_new_tokens, frame_rate, num_codebooks):
    raise NotImplementedError("Exercise: write your answer here")


def test_exercise_failed_stays_an_exception_the_grader_can_catch():
    err = ExerciseFailed("Title", "the problem.", "the hint.")
    assert isinstance(err, AssertionError) and isinstance(err, Exception)
    assert str(err) == "❌ Title: the problem.\nHint: the hint."
    again = pickle.loads(pickle.dumps(err))
    assert (again.exercise, again.problem, again.hint) == ("Title", "the problem.", "the hint.")


def test_render_traceback_is_the_message_and_hint_only():
    lines = failure(not_answered)._render_traceback_()
    assert lines == [
        "❌ Seconds of audio from max_new_tokens: not answered yet: your function still raises NotImplementedError.",
        "Hint: replace the line `raise NotImplementedError(...)` with your code, run that cell, then run this check again.",
    ]
    text = "\n".join(lines)
    assert "Traceback" not in text and "__tracebackhide__" not in text and "lesson04.py" not in text


def test_render_traceback_keeps_multiline_messages_and_omits_a_missing_hint():
    lines = ExerciseFailed("T", "expected\n[1 2]\ngot\n[2 1]")._render_traceback_()
    assert lines == ["❌ T: expected", "[1 2]", "got", "[2 1]"]


def test_render_traceback_points_at_the_learners_line_when_their_code_raised():
    def broken(max_new_tokens, frame_rate, num_codebooks):
        frames = [0, 1]
        return frames[max_new_tokens]

    lines = failure(broken)._render_traceback_()
    assert lines[0].endswith("your function raised IndexError: list index out of range")
    assert lines[1].startswith("(raised in your code, line ") and "return frames[max_new_tokens]" in lines[1]
    assert not any("harness.py" in line or "Traceback" in line for line in lines)


def test_a_failing_check_cell_in_a_real_kernel_shows_the_feedback_without_a_traceback(tmp_path):
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("from course_lib.checks import check_audio_seconds, check_close"),
        nbformat.v4.new_code_cell(
            "def audio_seconds(max_new_tokens, frame_rate, num_codebooks):\n"
            '    raise NotImplementedError("Exercise: write your answer here")'
        ),
        nbformat.v4.new_code_cell("check_audio_seconds(audio_seconds)"),
        nbformat.v4.new_code_cell("check_close('a number', 2.0, 1.0)"),
    ]
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    for cell, expected in ((nb.cells[2], "not answered yet"), (nb.cells[3], "largest difference 1")):
        (error,) = [out for out in cell.outputs if out.output_type == "error"]
        assert error.ename == "ExerciseFailed"
        text = "\n".join(error.traceback)
        assert expected in text and text.startswith("❌ ")
        assert "Traceback" not in text and "__tracebackhide__" not in text
        assert "harness.py" not in text and "lesson04.py" not in text and "def check_" not in text
    assert "Hint: replace the line" in "\n".join(nb.cells[2].outputs[0].traceback)


def test_check_close_failure_renders_too():
    with pytest.raises(ExerciseFailed) as info:
        check_close("a number", 2.0, 1.0)
    assert info.value._render_traceback_()[0].startswith("❌ a number: largest difference 1")
