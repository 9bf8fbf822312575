"""Shared Hypothesis strategies for the metric and box tests (generated inputs for the oracles).

Each strategy deliberately produces the inputs where implementations disagree: ties (scores
and coordinates drawn from small integer grids), degenerate label sets (a single class, no
positives, labels seen only in one array), empty predictions, images without ground truth and
scenes with more than 100 detections per image.
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st

WORDS = "the a cat dog sat on mat red big ran , . it is".split()


@st.composite
def label_pairs(draw, *, max_classes: int = 5, min_size: int = 1, max_size: int = 60):
    """``(target, preds, num_classes)``: integer labels, often a single class or a class unseen in one array."""
    k = draw(st.integers(1, max_classes))
    n = draw(st.integers(min_size, max_size))
    labels = st.integers(0, k - 1)
    t = np.array(draw(st.lists(labels, min_size=n, max_size=n)), dtype=np.int64)
    p = np.array(draw(st.lists(labels, min_size=n, max_size=n)), dtype=np.int64)
    return t, p, k


@st.composite
def binary_pairs(draw, *, min_size: int = 1, max_size: int = 60):
    """``(target, preds)`` in {0, 1}, including all-0 arrays (no positives at all) and all-1 arrays."""
    n = draw(st.integers(min_size, max_size))
    mode = draw(st.sampled_from(["random", "no_pos_target", "no_pos_either", "all_pos"]))
    bits = st.lists(st.integers(0, 1), min_size=n, max_size=n)
    t, p = np.array(draw(bits)), np.array(draw(bits))
    if mode == "no_pos_target":
        t[:] = 0
    elif mode == "no_pos_either":
        t[:], p[:] = 0, 0
    elif mode == "all_pos":
        t[:] = 1
    return t.astype(np.int64), p.astype(np.int64)


@st.composite
def scored_binary(draw, *, min_size: int = 2, max_size: int = 80, max_levels: int | None = None):
    """``(target, scores)`` with both classes present; scores on a small grid, so ties are common."""
    n = draw(st.integers(min_size, max_size))
    t = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n).filter(lambda v: 0 < sum(v) < len(v)))
    levels = max_levels or draw(st.sampled_from([2, 5, 20, 1000]))
    s = draw(st.lists(st.integers(0, levels - 1), min_size=n, max_size=n))
    return np.array(t, dtype=np.int64), np.array(s, dtype=float) / levels


@st.composite
def probability_rows(draw, *, max_classes: int = 5, min_size: int = 1, max_size: int = 60):
    """``(probs (N, C), target (N,))``: Dirichlet rows from a drawn seed (no ties in the argmax)."""
    c = draw(st.integers(2, max_classes))
    n = draw(st.integers(min_size, max_size))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    concentration = draw(st.sampled_from([0.2, 1.0, 5.0]))
    p = rng.dirichlet(np.full(c, concentration), n)
    p = np.clip(p, 1e-6, 1)
    p = p / p.sum(1, keepdims=True)
    t = rng.integers(0, c, n)
    return p, t


@st.composite
def int_boxes(draw, n: int, *, size: int = 40, allow_empty_area: bool = False):
    """(n, 4) float64 xyxy boxes on an integer grid (duplicates and exact IoU ties are common)."""
    lo = 0 if allow_empty_area else 1
    coords = draw(st.lists(st.tuples(st.integers(0, size), st.integers(0, size), st.integers(lo, size // 2),
                                     st.integers(lo, size // 2)), min_size=n, max_size=n))
    a = np.array(coords, dtype=float).reshape(n, 4)
    return torch.tensor(np.c_[a[:, :2], a[:, :2] + a[:, 2:]], dtype=torch.float64)


@st.composite
def detection_scene(draw, *, n_classes: int = 3, max_images: int = 4, many: bool = False):
    """``(preds, target)`` for a few images; ties in scores, images without ground truth, empty predictions.

    With ``many=True`` one image carries 101-140 detections, past COCO's ``maxDets = 100``.
    """
    n_images = draw(st.integers(1, max_images))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    score_levels = draw(st.sampled_from([3, 10, 10_000]))          # 3 levels: massive ties
    crowded = draw(st.integers(0, n_images - 1)) if many else -1
    preds, target = [], []
    for i in range(n_images):
        n_gt = int(rng.integers(0, 6)) if draw(st.booleans()) else 0  # images without ground truth
        xy = rng.integers(0, 60, (n_gt, 2))
        gt = np.c_[xy, xy + rng.integers(4, 30, (n_gt, 2))].astype(float)
        gl = rng.integers(0, n_classes, n_gt)
        n_dt = int(rng.integers(101, 141)) if i == crowded else int(rng.integers(0, 8))
        src = gt[rng.integers(0, n_gt, n_dt)] if n_gt else np.zeros((n_dt, 4))
        jitter = rng.integers(-3, 4, (n_dt, 4))
        dt = src + jitter if n_gt else np.c_[(xy2 := rng.integers(0, 60, (n_dt, 2))), xy2 + rng.integers(4, 30, (n_dt, 2))]
        dt = dt.astype(float)
        dt[:, 2:] = np.maximum(dt[:, 2:], dt[:, :2] + 1)
        dl = np.where(rng.random(n_dt) < 0.8, gl[rng.integers(0, n_gt, n_dt)] if n_gt else 0, rng.integers(0, n_classes, n_dt))
        sc = rng.integers(1, score_levels + 1, n_dt) / score_levels
        target.append({"boxes": torch.tensor(gt).reshape(-1, 4), "labels": torch.tensor(gl, dtype=torch.long)})
        preds.append({"boxes": torch.tensor(dt).reshape(-1, 4), "scores": torch.tensor(sc, dtype=torch.float64),
                      "labels": torch.tensor(dl, dtype=torch.long)})
    return preds, target


sentences = st.lists(st.sampled_from(WORDS), min_size=0, max_size=12).map(" ".join)
nonempty_sentences = st.lists(st.sampled_from([w for w in WORDS if w.isalpha()]), min_size=1, max_size=12).map(" ".join)


@st.composite
def bleu_corpus(draw, *, max_sentences: int = 4, max_refs: int = 2):
    """``(hypotheses, references)`` in sacrebleu's layout; hypotheses may be empty or share nothing."""
    n = draw(st.integers(1, max_sentences))
    hyps = draw(st.lists(sentences, min_size=n, max_size=n))
    n_refs = draw(st.integers(1, max_refs))
    refs = [draw(st.lists(nonempty_sentences, min_size=n, max_size=n)) for _ in range(n_refs)]
    return hyps, refs
