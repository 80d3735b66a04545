"""data.stream_genre against the Hub stand-in: the first n clips of one genre, streamed."""

from __future__ import annotations

import pytest

from course_lib import data
from course_lib.errors import CourseInputError
from course_lib.hub_datasets import audio_array

ID = "lewtun/music_genres"


def test_stream_genre_keeps_n_clips_of_the_genre_and_reads_their_audio(hub_online):
    rows = data.stream_genre(ID, "rock", 3)           # case and punctuation ignored
    assert len(rows) == 3 and set(rows["genre"]) == {"Rock"}
    assert set(rows.column_names) == {"audio", "song_id", "genre_id", "genre"}
    clip, sr = audio_array(rows[0])
    assert sr == 44100 and clip.ndim == 1 and clip.shape[0] > 5 * sr and abs(clip).max() > 0.01
    assert data.select_genre(rows, "Rock").num_rows == 3     # the rest of lesson 03 works on it unchanged
    assert [g for g, _, _ in data.genre_table(rows)] == ["Rock"]


def test_stream_genre_stops_at_max_rows_and_names_what_it_saw(hub_online):
    few = data.stream_genre(ID, "Hip-Hop", 10, max_rows=8)  # 7 genres interleaved: at most 2 Hip-Hop rows in 8
    assert 1 <= len(few) <= 2
    with pytest.raises(CourseInputError, match=r"no 'Polka' clip.*genres seen: \[.*'Rock'"):
        data.stream_genre(ID, "Polka", 2)
    for bad in ("", 3):
        with pytest.raises(CourseInputError, match="genre"):
            data.stream_genre(ID, bad, 2)
    with pytest.raises(CourseInputError, match="n"):
        data.stream_genre(ID, "Rock", 0)
