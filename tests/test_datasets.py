"""dlbook.datasets: bundled text is found as package data; generated text is deterministic."""

import pytest

from dlbook import datasets


def test_corpus_is_bundled_text():
    text = datasets.corpus()
    assert len(text) > 2000 and text.startswith("A metric is a question")


def test_story_text_is_deterministic_and_sized():
    a = datasets.story_text(300, seed=1)
    assert a == datasets.story_text(300, seed=1)
    assert a != datasets.story_text(300, seed=2)
    assert a.count(".") == 300
    assert set(a) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .")


@pytest.mark.parametrize("bad, err", [(0, ValueError), (-3, ValueError), (2.0, TypeError), (True, TypeError)])
def test_story_text_bad_size(bad, err):
    with pytest.raises(err, match="n_sentences"):
        datasets.story_text(bad)
