import numpy as np
import pytest
import torch

from course_lib.validate import (
    CourseInputError,
    as_float_tensor,
    check_choice,
    check_dir,
    check_file,
    check_number,
    check_positive_int,
    check_sample_rate,
)


def test_as_float_tensor_converts_and_keeps_values():
    x = np.linspace(-1, 1, 11)
    t = as_float_tensor(x)
    assert t.dtype == torch.float32 and torch.allclose(t, torch.from_numpy(x).float())
    assert as_float_tensor([0.5, 0.25]).tolist() == [0.5, 0.25]


@pytest.mark.parametrize(
    "bad, words",
    [
        (np.array([0.0, np.nan]), "NaN"),
        (np.array([np.inf, 0.0]), "NaN or infinite"),
        (np.array([np.inf, -np.inf]), "2 NaN or infinite"),
        (np.zeros(0, dtype=np.float32), "empty"),
        (np.zeros(4, dtype=np.int16), "32768"),
        (np.zeros(4, dtype=bool), "boolean"),
        (np.zeros(4, dtype=np.complex64), "complex"),
        ("not audio", "NumPy array"),
    ],
)
def test_as_float_tensor_rejects_bad_input_with_a_fix(bad, words):
    with pytest.raises(CourseInputError, match=words):
        as_float_tensor(bad, "clip")


def test_finite_check_catches_a_nan_among_large_values():
    x = torch.full((10_000,), 3.0e38)  # the sum overflows: the element-wise check must decide
    assert torch.isfinite(as_float_tensor(x)).all()
    x[17] = float("nan")
    with pytest.raises(CourseInputError, match="1 NaN"):
        as_float_tensor(x)


def test_rank_and_length_limits_name_the_argument():
    with pytest.raises(CourseInputError, match="waveform: expected 1 dimensions"):
        as_float_tensor(np.zeros((2, 3)), "waveform", max_ndim=1)
    with pytest.raises(CourseInputError, match="at least 8"):
        as_float_tensor(np.zeros(4), min_length=8)


def test_sample_rate_checks():
    assert check_sample_rate(22050.0) == 22050
    with pytest.raises(CourseInputError, match="resample"):
        check_sample_rate(44100, expected=22050)
    for bad in (0, -8000, 22050.5, "22050", True, 10):
        with pytest.raises(CourseInputError):
            check_sample_rate(bad)


def test_int_and_choice_checks():
    assert check_positive_int(np.int64(3), "steps") == 3
    with pytest.raises(CourseInputError, match="steps: must be at least 1"):
        check_positive_int(0, "steps")
    with pytest.raises(CourseInputError, match="whole number"):
        check_positive_int(2.0, "steps")
    assert check_choice("a", "mode", ("a", "b")) == "a"
    with pytest.raises(CourseInputError, match="mode"):
        check_choice("c", "mode", ("a", "b"))


def test_file_and_dir_checks(tmp_path):
    f = tmp_path / "x.wav"
    with pytest.raises(CourseInputError, match="does not exist"):
        check_file(f)
    f.write_bytes(b"")
    with pytest.raises(CourseInputError, match="empty file"):
        check_file(f)
    f.write_bytes(b"RIFF")
    assert check_file(f) == f
    with pytest.raises(CourseInputError, match="is a folder"):
        check_file(tmp_path)
    assert check_dir(tmp_path) == tmp_path
    with pytest.raises(CourseInputError, match="not an existing folder"):
        check_dir(f)


def test_check_number_bounds():
    assert check_number(np.float32(0.5), "gain", 0.0, 1.0) == 0.5
    with pytest.raises(CourseInputError, match="gain: must be > 0"):
        check_number(0.0, "gain", 0.0, low_open=True)
    with pytest.raises(CourseInputError, match="must be < 1"):
        check_number(1.0, "gain", high=1.0, high_open=True)
    for bad in (float("nan"), float("inf"), "1", True, None):
        with pytest.raises(CourseInputError, match="gain"):
            check_number(bad, "gain")
