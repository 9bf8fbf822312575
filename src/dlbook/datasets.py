"""Data that ships with dlbook, so every notebook runs offline, on Colab as locally.

Images and tables come from scikit-learn's bundled sets (``load_digits``, ``load_iris``, ...).
Text comes from here:

- :func:`corpus` is a short English text (about 2,600 characters) bundled as package data;
- :func:`story_text` generates as much English-like text as asked for from a small, fixed
  grammar (subjects, verbs, objects, places and connectives), deterministic for a given seed, for
  character- and word-level language models that need more than the bundled text.
"""

from __future__ import annotations

from importlib import resources

__all__ = ["corpus", "story_text"]

_SUBJECTS = ["the cat", "the dog", "a small bird", "the old man", "the girl", "my friend",
             "the teacher", "a tired horse", "the children", "the farmer"]
_VERBS = ["sees", "likes", "follows", "finds", "watches", "helps", "calls", "meets"]
_OBJECTS = ["the ball", "a red apple", "the mouse", "the river", "a green hat", "the moon",
            "the little boat", "a loaf of bread", "the garden gate", "the blue box"]
_PLACES = ["in the park", "near the house", "by the sea", "under the tree", "at the market",
           "on the hill", "in the kitchen", "after the rain"]
_JOINS = ["and then", "but later", "so", "because", "while"]


def corpus() -> str:
    """The bundled English text (``dlbook/data/corpus.txt``), as one string."""
    return resources.files("dlbook").joinpath("data/corpus.txt").read_text(encoding="utf-8")


def _sentence(choice) -> str:
    clause = f"{choice(_SUBJECTS)} {choice(_VERBS)} {choice(_OBJECTS)}"
    if choice([True, False]):
        clause += f" {choice(_PLACES)}"
    if choice([True, False, False]):
        clause += f" {choice(_JOINS)} {choice(_SUBJECTS)} {choice(_VERBS)} {choice(_OBJECTS)}"
    return clause[0].upper() + clause[1:] + "."


def story_text(n_sentences: int = 2000, *, seed: int = 0) -> str:
    """``n_sentences`` sentences from a fixed grammar, joined by spaces; same seed, same text.

    Uses Python's ``random.Random(seed)`` (not the global generator), so it is identical on every
    machine and Python version that keeps ``Random``'s documented reproducibility.
    """
    import random

    if isinstance(n_sentences, bool) or not isinstance(n_sentences, int):
        raise TypeError(f"n_sentences must be an int, got {type(n_sentences).__name__}")
    if n_sentences < 1:
        raise ValueError(f"n_sentences must be >= 1, got {n_sentences}")
    r = random.Random(seed)
    return " ".join(_sentence(r.choice) for _ in range(n_sentences))
