"""Evaluation metrics: classification, ranking, calibration, regression, segmentation, text, generative.

Reference implementations for the chapter :doc:`/chapters/metrics/index`. Every function is
pure, takes array-likes (NumPy arrays, lists, or CPU tensors) and returns Python floats or NumPy
arrays, except :func:`perplexity`, which works on torch tensors so it stays differentiable.
Each is checked in ``tests/test_metrics.py`` against the library practitioners use
(scikit-learn, torchmetrics, sacrebleu, rouge-score); where our convention differs, the
docstring says so.

Conventions shared by all classification functions:

* ``target`` (true labels) comes first and ``preds`` second, as in torchmetrics; scikit-learn
  calls them ``y_true, y_pred`` in the same order.
* Labels are integers in ``{0, ..., num_classes - 1}``; binary metrics use 1 as the positive class.
* A ratio whose denominator is zero (precision with no predicted positives, ...) returns
  ``zero_division`` (default 0.0), which is scikit-learn's ``zero_division=0.0``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "accuracy", "average_precision", "balanced_accuracy", "brier_score", "confusion_matrix", "corpus_bleu",
    "dice_score", "expected_calibration_error", "frechet_distance", "mann_whitney_auc",
    "log_loss", "mean_absolute_error", "mean_absolute_percentage_error", "mean_iou", "mean_squared_error",
    "ndcg_score", "perplexity", "precision_recall_curve", "precision_recall_fscore",
    "r2_score", "reliability_bins", "roc_auc", "roc_curve", "root_mean_squared_error", "rouge_l",
    "rouge_n", "sentence_bleu", "tokenize_13a",
]


# ----------------------------------------------------------------------------- validation
def _as_1d(name: str, x) -> np.ndarray:
    """``x`` as a 1-D NumPy array (tensors are detached), or a ValueError naming ``name``."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    return a


def _pair(target, preds, *, names: tuple[str, str] = ("target", "preds")) -> tuple[np.ndarray, np.ndarray]:
    t, p = _as_1d(names[0], target), _as_1d(names[1], preds)
    if t.shape != p.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same length, got {t.shape[0]} and {p.shape[0]}")
    return t, p


def _labels(name: str, y: np.ndarray, num_classes: int) -> np.ndarray:
    if not np.issubdtype(y.dtype, np.integer) and not np.all(np.mod(y, 1) == 0):
        raise ValueError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    y = y.astype(np.int64)
    bad = y[(y < 0) | (y >= num_classes)]
    if bad.size:
        raise ValueError(f"{name} has labels outside the class set {{0..{num_classes - 1}}}: {np.unique(bad)[:5]}")
    return y


def _binary_target(target) -> np.ndarray:
    t = _as_1d("target", target)
    if not np.isin(t, (0, 1)).all():
        raise ValueError(f"target must be binary (0/1), got values {np.unique(t)[:5]}")
    if t.min() == t.max():
        raise ValueError("target holds a single class: the curve needs both positives and negatives")
    return t.astype(np.int64)


def _safe_div(num: np.ndarray, den: np.ndarray, zero_division: float) -> np.ndarray:
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    out = np.full(np.broadcast(num, den).shape, float(zero_division))
    np.divide(num, den, out=out, where=den != 0)
    return out


# ----------------------------------------------------------------------------- classification
def confusion_matrix(target, preds, *, num_classes: int | None = None) -> np.ndarray:
    """Confusion matrix (混淆矩阵) ``C[i, j]`` = number of samples of true class i predicted as j.

    Rows are true classes, columns predicted classes (scikit-learn's and torchmetrics'
    convention). ``num_classes`` defaults to ``max(target, preds) + 1``.
    """
    target, preds = _pair(target, preds)
    if num_classes is None:
        num_classes = int(max(target.max(), preds.max())) + 1
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    t, p = _labels("target", target, num_classes), _labels("preds", preds, num_classes)
    flat = np.bincount(t * num_classes + p, minlength=num_classes**2)  # (K*K,)
    return flat.reshape(num_classes, num_classes)


def accuracy(target, preds) -> float:
    """Fraction of exact matches, ``mean(target == preds)``."""
    target, preds = _pair(target, preds)
    return float(np.mean(target == preds))


def balanced_accuracy(target, preds, *, num_classes: int | None = None) -> float:
    """Mean per-class recall, ``(1/K) sum_k TP_k / (TP_k + FN_k)`` over classes present in ``target``.

    Equals scikit-learn's ``balanced_accuracy_score`` (``adjusted=False``).
    """
    cm = confusion_matrix(target, preds, num_classes=num_classes)
    support = cm.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(cm)[present] / support[present]))


def precision_recall_fscore(
    target, preds, *, average: str | None = "binary", beta: float = 1.0,
    num_classes: int | None = None, zero_division: float = 0.0,
) -> tuple:
    """Precision (精确率), recall (召回率) and F-beta from the confusion matrix.

    Per class k: ``P_k = TP_k/(TP_k+FP_k)``, ``R_k = TP_k/(TP_k+FN_k)``,
    ``F_beta = (1+beta^2) P R / (beta^2 P + R)`` (van Rijsbergen, *Information Retrieval*, 1979).
    ``average``: ``"binary"`` (class 1 only), ``"micro"`` (pool TP/FP/FN over classes, then divide),
    ``"macro"`` (unweighted mean over classes), ``"weighted"`` (mean weighted by support), or
    ``None`` (per-class arrays). Same conventions as ``sklearn.metrics.precision_recall_fscore_support``,
    whose macro average runs over the union of labels seen in ``target`` and ``preds``.

    Degenerate case: with ``average="binary"`` and no 1 in either array, TP = FP = FN = 0 and all
    three ratios are 0/0, so the result is ``(zero_division,) * 3`` = ``(0, 0, 0)`` by default,
    as scikit-learn (which also warns). F-beta is 0/0 only when P and R both are.
    """
    if average not in ("binary", "micro", "macro", "weighted", None):
        raise ValueError(f"average must be 'binary', 'micro', 'macro', 'weighted' or None, got {average!r}")
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    cm = confusion_matrix(target, preds, num_classes=num_classes)
    if average == "binary" and cm.shape[0] > 2:
        raise ValueError(f"average='binary' needs labels in {{0, 1}}, got {cm.shape[0]} classes")
    if average == "binary" and cm.shape[0] == 1:
        cm = np.pad(cm, ((0, 1), (0, 1)))      # class 1 exists even when neither array holds a 1
    tp = np.diag(cm).astype(float)            # (K,)
    fp, fn = cm.sum(axis=0) - tp, cm.sum(axis=1) - tp
    if average == "micro":
        tp, fp, fn = tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True)
    p = _safe_div(tp, tp + fp, zero_division)
    r = _safe_div(tp, tp + fn, zero_division)
    f = _safe_div((1 + beta**2) * tp, (1 + beta**2) * tp + beta**2 * fn + fp, zero_division)  # = (1+b^2)PR/(b^2P+R)
    if average is None:
        return p, r, f
    if average in ("binary", "micro"):
        k = -1 if average == "binary" else 0
        return float(p[k]), float(r[k]), float(f[k])
    seen = (cm.sum(axis=0) + cm.sum(axis=1)) > 0  # labels present in target or preds
    w = cm.sum(axis=1)[seen] if average == "weighted" else np.ones(seen.sum())
    return tuple(float(np.average(m[seen], weights=w)) if w.sum() > 0 else float(zero_division) for m in (p, r, f))


# ----------------------------------------------------------------------------- ranking curves
def roc_curve(target, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve (ROC曲线): ``(fpr, tpr, thresholds)`` at every distinct score, highest first.

    Predict positive when ``score >= threshold``. Tied scores form one step (so the curve goes
    diagonally through a tie). The first point is ``(0, 0)`` at threshold ``+inf``. This equals
    ``sklearn.metrics.roc_curve(..., drop_intermediate=False)``.
    """
    t, s = _pair(_binary_target(target), scores, names=("target", "scores"))
    order = np.argsort(-s, kind="mergesort")
    t, s = t[order], s[order].astype(float)
    last = np.r_[np.nonzero(np.diff(s))[0], t.size - 1]   # last index of each distinct score
    tps = np.cumsum(t)[last]                               # TP at threshold s[last]
    fps = (last + 1) - tps                                 # FP at threshold s[last]
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    return fpr, tpr, np.r_[np.inf, s[last]]


def roc_auc(target, scores) -> float:
    """Area under the ROC curve by the trapezoid rule, ``sum (FPR_i - FPR_{i-1}) (TPR_i + TPR_{i-1}) / 2``."""
    fpr, tpr, _ = roc_curve(target, scores)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def mann_whitney_auc(target, scores) -> float:
    """``P(s+ > s-) + P(s+ = s-)/2`` over all (positive, negative) pairs: the Mann-Whitney U / (n+ n-).

    Hanley & McNeil (1982), "The meaning and use of the area under a ROC curve", Radiology 143.
    O(n+ n-) memory: a definition to check against, not a fast algorithm.
    """
    t, s = _pair(_binary_target(target), scores, names=("target", "scores"))
    pos, neg = s[t == 1][:, None], s[t == 0][None, :]      # (n+, 1), (1, n-)
    wins = (pos > neg).sum() + 0.5 * (pos == neg).sum()
    return float(wins / (pos.size * neg.size))


def precision_recall_curve(target, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision-recall curve (PR曲线): ``(precision, recall, thresholds)``, thresholds increasing.

    Same convention as ``sklearn.metrics.precision_recall_curve`` (>= 1.1): one point per distinct
    score, recall decreasing, plus a final point ``(precision=1, recall=0)``.
    """
    fpr, tpr, thr = roc_curve(target, scores)
    t = _binary_target(target)
    tps, fps = tpr[1:] * t.sum(), fpr[1:] * (t.size - t.sum())
    precision, recall = tps / (tps + fps), tps / tps[-1]
    sl = slice(None, None, -1)                               # reversed: thresholds increasing
    return np.r_[precision[sl], 1.0], np.r_[recall[sl], 0.0], thr[1:][sl]


def average_precision(target, scores) -> float:
    """Average precision (平均精度) ``AP = sum_n (R_n - R_{n-1}) P_n``, a step sum with no interpolation.

    This is scikit-learn's ``average_precision_score``; it is *not* the interpolated AP of
    PASCAL VOC or COCO (see :mod:`dlbook.boxes`).
    """
    precision, recall, _ = precision_recall_curve(target, scores)
    return float(-np.sum(np.diff(recall) * precision[:-1]))


def ndcg_score(relevance, scores, *, k: int | None = None) -> float:
    """NDCG@k (归一化折损累计增益) with linear gain: ``DCG = sum_i rel_i / log2(i + 1)`` over the top k.

    ``NDCG = DCG(order by scores) / DCG(ideal order)``. Linear gain ``rel`` is scikit-learn's
    ``ndcg_score`` convention; Burges et al. (2005) use ``2^rel - 1`` (see the chapter). Ties in
    ``scores`` are broken by position (scikit-learn averages over tied orders instead).
    """
    rel, s = _pair(relevance, scores, names=("relevance", "scores"))
    if k is not None and k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = rel.size if k is None else min(k, rel.size)
    discount = 1 / np.log2(np.arange(2, k + 2))             # 1 / log2(i + 1), i = 1..k
    dcg = np.sum(rel[np.argsort(-s, kind="mergesort")][:k] * discount)
    idcg = np.sum(np.sort(rel)[::-1][:k] * discount)
    return float(dcg / idcg) if idcg > 0 else 0.0


# ----------------------------------------------------------------------------- calibration
def reliability_bins(probs, target, *, n_bins: int = 15) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bin ``(accuracy, confidence, fraction of samples)`` of the top-1 prediction.

    ``probs`` is (N, C) of class probabilities. Bin b holds confidences in
    ``[b/n_bins, (b+1)/n_bins)``; a confidence of exactly 1.0 gets its own last bin (index
    ``n_bins``), which is torchmetrics' ``torch.bucketize(..., right=True)`` convention. Empty bins
    report 0 accuracy and confidence with weight 0.
    """
    p = np.asarray(probs.detach() if isinstance(probs, torch.Tensor) else probs, dtype=float)
    if p.ndim != 2:
        raise ValueError(f"probs must have shape (N, C), got {p.shape}")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    t = _labels("target", _as_1d("target", target), p.shape[1])
    if t.size != p.shape[0]:
        raise ValueError(f"probs and target must have the same length, got {p.shape[0]} and {t.size}")
    conf, correct = p.max(axis=1), (p.argmax(axis=1) == t).astype(float)
    b = np.searchsorted(np.linspace(0, 1, n_bins + 1), conf, side="right") - 1
    count = np.bincount(b, minlength=n_bins + 1)
    acc = _safe_div(np.bincount(b, correct, minlength=n_bins + 1), count, 0.0)
    mean_conf = _safe_div(np.bincount(b, conf, minlength=n_bins + 1), count, 0.0)
    return acc, mean_conf, count / count.sum()


def expected_calibration_error(probs, target, *, n_bins: int = 15) -> float:
    """ECE (期望校准误差) ``= sum_b (|B_b|/N) |acc(B_b) - conf(B_b)|`` (Guo et al., 2017, eq. 3).

    Equal-width bins as in :func:`reliability_bins`; this is torchmetrics'
    ``multiclass_calibration_error(norm="l1")``.
    """
    acc, conf, weight = reliability_bins(probs, target, n_bins=n_bins)
    return float(np.sum(weight * np.abs(acc - conf)))


def _probs_target(probs, target) -> tuple[np.ndarray, np.ndarray]:
    """``probs`` as (N, C) (a 1-D array is P(class 1) of a binary problem) and integer ``target``."""
    p = np.asarray(probs.detach() if isinstance(probs, torch.Tensor) else probs, dtype=float)
    if p.ndim == 1:
        p = np.stack([1 - p, p], axis=1)                    # (N,) -> (N, 2)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"probs must have shape (N,) or (N, C) with N > 0, got {p.shape}")
    if np.any(p < 0) or np.any(p > 1):
        raise ValueError(f"probs must lie in [0, 1], got values in [{p.min()}, {p.max()}]")
    t = _labels("target", _as_1d("target", target), p.shape[1])
    if t.size != p.shape[0]:
        raise ValueError(f"probs and target must have the same length, got {p.shape[0]} and {t.size}")
    return p, t


def brier_score(target, probs) -> float:
    """Brier score (Brier, 1950) ``= (1/N) sum_i sum_k (p_ik - [y_i = k])^2``, a proper scoring rule.

    ``probs``: (N, C) class probabilities, or (N,) ``P(y = 1)`` for a binary problem. For the
    binary case we return the mean of ``(p_i - y_i)^2`` over the positive class only, which is
    scikit-learn's ``brier_score_loss`` (half of Brier's two-class sum); for C > 2 the sum over
    classes, as ``brier_score_loss`` on multiclass input. Proper: its expectation under the true
    distribution is minimised by reporting that distribution, so it rewards calibration and
    sharpness together, with no bins.
    """
    p, t = _probs_target(probs, target)
    onehot = np.eye(p.shape[1])[t]                          # (N, C)
    per_sample = np.sum((p - onehot) ** 2, axis=1)          # (N,)
    return float(np.mean(per_sample) / 2 if p.shape[1] == 2 else np.mean(per_sample))


def log_loss(target, probs, *, eps: float = 0.0) -> float:
    """Log loss ``= -(1/N) sum_i log p_{i, y_i}`` (the cross-entropy of the predicted probabilities).

    Strictly proper (Good, 1952). ``probs`` as in :func:`brier_score`; rows are used as given (not
    renormalised). ``eps`` clips ``p`` to ``[eps, 1 - eps]`` before the log (default 0: a zero
    probability on the true class gives ``inf``). scikit-learn's ``log_loss`` clips at the dtype's
    machine epsilon and renormalises rows; on rows that sum to 1 and lie in ``[eps, 1 - eps]`` the
    two agree.
    """
    p, t = _probs_target(probs, target)
    if not 0 <= eps < 0.5:
        raise ValueError(f"eps must be in [0, 0.5), got {eps}")
    p_true = np.clip(p[np.arange(t.size), t], eps, 1 - eps)  # (N,)
    with np.errstate(divide="ignore"):
        return float(-np.mean(np.log(p_true)))


# ----------------------------------------------------------------------------- regression
def _regression_pair(target, preds) -> tuple[np.ndarray, np.ndarray]:
    t, p = _pair(target, preds)
    return t.astype(float), p.astype(float)


def mean_absolute_error(target, preds) -> float:
    """MAE ``= (1/n) sum |y_i - yhat_i|``, in the units of the target."""
    y, y_hat = _regression_pair(target, preds)
    return float(np.mean(np.abs(y - y_hat)))


def mean_squared_error(target, preds) -> float:
    """MSE ``= (1/n) sum (y_i - yhat_i)^2``, in squared units."""
    y, y_hat = _regression_pair(target, preds)
    return float(np.mean((y - y_hat) ** 2))


def root_mean_squared_error(target, preds) -> float:
    """RMSE ``= sqrt(MSE)``, back in the units of the target; RMSE >= MAE (power-mean inequality)."""
    return math.sqrt(mean_squared_error(target, preds))


def mean_absolute_percentage_error(target, preds, *, eps: float = float(np.finfo(np.float64).eps)) -> float:
    """MAPE ``= (1/n) sum |y_i - yhat_i| / max(|y_i|, eps)``, as a fraction (not times 100%).

    The ``eps`` floor is scikit-learn's (machine epsilon): it keeps a zero target finite, not small.
    """
    y, y_hat = _regression_pair(target, preds)
    return float(np.mean(np.abs(y - y_hat) / np.maximum(np.abs(y), eps)))


def r2_score(target, preds) -> float:
    """Coefficient of determination (决定系数) ``R^2 = 1 - SS_res / SS_tot``.

    ``SS_res = sum (y - yhat)^2``, ``SS_tot = sum (y - ybar)^2``. Bounded above by 1, unbounded
    below: any model worse than predicting ``ybar`` gets ``R^2 < 0``. A constant target
    (``SS_tot = 0``) raises, where scikit-learn returns 1.0 or 0.0 by convention.
    """
    y, y_hat = _regression_pair(target, preds)
    ss_res = np.sum((y - y_hat) ** 2)
    ss_tot = np.sum((y - y.mean()) ** 2)
    if ss_tot == 0:
        raise ValueError("target is constant (SS_tot = 0): R^2 is undefined")
    return float(1 - ss_res / ss_tot)


# ----------------------------------------------------------------------------- segmentation
def mean_iou(target, preds, *, num_classes: int, zero_division: float = float("nan")) -> tuple[float, np.ndarray]:
    """Mean IoU (平均交并比) over classes from the pixel confusion matrix: ``IoU_k = C_kk / (row_k + col_k - C_kk)``.

    ``target``/``preds`` are label maps of any (equal) shape. Returns ``(mIoU, per-class IoU)``;
    a class absent from both gets ``zero_division`` (NaN by default, skipped by the mean).
    torchmetrics' ``JaccardIndex(average="macro")`` equals this mean when every class appears.
    """
    t, p = np.asarray(target), np.asarray(preds)
    if t.shape != p.shape:
        raise ValueError(f"target and preds must have the same shape, got {t.shape} and {p.shape}")
    cm = confusion_matrix(t.ravel(), p.ravel(), num_classes=num_classes)
    inter = np.diag(cm).astype(float)
    union = cm.sum(axis=0) + cm.sum(axis=1) - inter
    iou = _safe_div(inter, union, zero_division)
    return float(np.nanmean(iou)), iou


def dice_score(target, preds) -> float:
    """Dice coefficient ``2|X n Y| / (|X| + |Y|)`` of two binary masks; ``Dice = 2 IoU / (1 + IoU)``.

    Two empty masks raise: the ratio is 0/0.
    """
    x, y = np.asarray(target).astype(bool), np.asarray(preds).astype(bool)
    if x.shape != y.shape:
        raise ValueError(f"target and preds must have the same shape, got {x.shape} and {y.shape}")
    total = x.sum() + y.sum()
    if total == 0:
        raise ValueError("both masks are empty: Dice is 0/0")
    return float(2 * np.logical_and(x, y).sum() / total)


# ----------------------------------------------------------------------------- text
_13A_RULES = [
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),  # punctuation and symbols
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),                 # . , unless preceded by a digit
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),                 # . , unless followed by a digit
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),                      # dash after a digit
]


def tokenize_13a(line: str) -> list[str]:
    """The ``13a`` tokenizer of mteval-v13a (WMT's), sacrebleu's default, for plain text."""
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    for old, new in (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">")):
        line = line.replace(old, new)
    line = f" {line} "
    for pattern, repl in _13A_RULES:
        line = pattern.sub(repl, line)
    return line.split()


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


_SMOOTH_DEFAULTS = {"none": None, "floor": 0.1, "add-k": 1.0, "exp": None}


def _bleu_stats(hypotheses, references, max_order: int, tokenize: str) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Sufficient statistics of BLEU: clipped matches ``m_n``, totals ``t_n`` (n = 1..max_order), ``c``, ``r``."""
    if tokenize not in ("13a", "none"):
        raise ValueError(f"tokenize must be '13a' or 'none', got {tokenize!r}")
    if max_order < 1:
        raise ValueError(f"max_order must be >= 1, got {max_order}")
    if len(references) == 0 or len(hypotheses) == 0:
        raise ValueError("hypotheses and references must not be empty")
    if any(len(refs) != len(hypotheses) for refs in references):
        raise ValueError(f"each reference stream needs {len(hypotheses)} sentences, got {[len(r) for r in references]}")
    tok = tokenize_13a if tokenize == "13a" else str.split
    matches, totals, c, r = np.zeros(max_order), np.zeros(max_order), 0, 0
    for i, hyp in enumerate(hypotheses):
        h, refs = tok(hyp.rstrip()), [tok(stream[i].rstrip()) for stream in references]
        c += len(h)
        r += min((abs(len(x) - len(h)), len(x)) for x in refs)[1]   # closest length, shorter on ties
        for n in range(1, max_order + 1):
            hyp_counts = _ngrams(h, n)
            max_ref = Counter()
            for x in refs:
                max_ref |= _ngrams(x, n)                               # elementwise max of counts
            matches[n - 1] += sum(min(k, max_ref[g]) for g, k in hyp_counts.items())
            totals[n - 1] += max(len(h) - n + 1, 0)
    return matches, totals, c, r


def _smoothed_precisions(
    matches: np.ndarray, totals: np.ndarray, smooth_method: str, smooth_value: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(p_n, t_n)`` after smoothing (Chen & Cherry, 2014); add-k also lifts an empty order to ``k/k``."""
    m, t = matches.astype(float).copy(), totals.astype(float).copy()
    if smooth_method == "add-k":                      # method 2: add k to m_n and t_n for n >= 2
        m[1:] += smooth_value
        t[1:] += smooth_value
    p = _safe_div(m, t, 0.0)
    zero = (m == 0) & (t > 0)
    if smooth_method == "floor":                      # method 1: a zero count becomes epsilon
        p[zero] = smooth_value / t[zero]
    elif smooth_method == "exp":                      # method 3 (NIST, mteval-v13a): 1/2, 1/4, ... of a count
        p[zero] = 1 / (2.0 ** np.arange(1, zero.sum() + 1) * t[zero])
    return p, t


def corpus_bleu(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], *,
    max_order: int = 4, tokenize: str = "13a", smooth_method: str = "exp",
    smooth_value: float | None = None, effective_order: bool = False,
) -> dict[str, object]:
    """Corpus BLEU (Papineni et al., 2002) on sacrebleu's 0-100 scale, with sacrebleu's smoothing.

    ``references[r][i]`` is reference r of sentence i (sacrebleu's layout). Clipped counts
    ``m_n = sum_i sum_g min(c_i(g), max_r c_ir(g))`` over n-grams g, pooled over the *corpus*
    before dividing: ``p_n = m_n / t_n`` (``t_n`` = n-grams in the hypotheses);
    ``BP = exp(1 - r/c)`` if ``c < r`` (r: sum of closest reference lengths) else 1;
    ``BLEU = 100 * BP * exp((1/N) sum_n log p_n)``. A single ``p_n = 0`` makes the geometric mean
    0; smoothing (Chen & Cherry, 2014, "A systematic comparison of smoothing techniques for
    sentence-level BLEU") replaces it:

    * ``"none"``: no change, BLEU = 0 (Papineni's definition);
    * ``"floor"`` (method 1): ``p_n = smooth_value / t_n`` when ``m_n = 0`` (default 0.1);
    * ``"add-k"`` (method 2): ``p_n = (m_n + k) / (t_n + k)`` for ``n >= 2`` (default k = 1);
    * ``"exp"`` (method 3, NIST/mteval-v13a, sacrebleu's default): the j-th order with ``m_n = 0``
      gets ``p_n = 1 / (2^j t_n)``.

    If no n-gram of any order matches, BLEU is 0 whatever the smoothing. ``effective_order``
    averages only over orders with ``t_n > 0`` (for sentences shorter than ``max_order``; on by
    default in :func:`sentence_bleu`). Equals ``sacrebleu.corpus_bleu`` with the same arguments
    (``lowercase=False``). Returns ``{"score", "precisions", "bp", "sys_len", "ref_len"}``.
    """
    if smooth_method not in _SMOOTH_DEFAULTS:
        raise ValueError(f"smooth_method must be one of {list(_SMOOTH_DEFAULTS)}, got {smooth_method!r}")
    if smooth_value is None:
        smooth_value = _SMOOTH_DEFAULTS[smooth_method]
    matches, totals, c, r = _bleu_stats(hypotheses, references, max_order, tokenize)
    bp = 1.0 if c >= r else math.exp(1 - r / c) if c > 0 else 0.0
    if not matches.any():
        return {"score": 0.0, "precisions": np.zeros(max_order), "bp": bp, "sys_len": c, "ref_len": r}
    precisions, totals = _smoothed_precisions(matches, totals, smooth_method, smooth_value)
    n_used = int((totals > 0).sum()) if effective_order else max_order   # orders averaged
    used = precisions[:n_used]
    score = 0.0 if np.any(used == 0) else 100 * bp * math.exp(np.mean(np.log(used)))
    return {"score": score, "precisions": 100 * precisions, "bp": bp, "sys_len": c, "ref_len": r}


def sentence_bleu(
    hypothesis: str, references: Sequence[str], *, smooth_method: str = "exp",
    smooth_value: float | None = None, effective_order: bool = True, tokenize: str = "13a",
) -> dict[str, object]:
    """BLEU of one sentence: :func:`corpus_bleu` of a one-sentence corpus, smoothed, effective order.

    ``references`` lists the references of this sentence. Equals ``sacrebleu.sentence_bleu``,
    whose defaults are ``smooth_method="exp"`` and ``use_effective_order=True``. The mean of
    sentence BLEUs over a corpus is not corpus BLEU (the ratios are pooled before dividing there).
    """
    if isinstance(references, str):
        raise TypeError("references must be a sequence of strings (the references of this sentence), got str")
    return corpus_bleu([hypothesis], [[ref] for ref in references], tokenize=tokenize,
                       smooth_method=smooth_method, smooth_value=smooth_value, effective_order=effective_order)


def _rouge_tokens(text: str) -> list[str]:
    """rouge-score's default tokenizer: lowercase, non-alphanumerics become spaces, no stemming."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).split()


def _prf(overlap: float, n_pred: int, n_target: int) -> tuple[float, float, float]:
    p = overlap / n_pred if n_pred else 0.0
    r = overlap / n_target if n_target else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def rouge_n(target: str, prediction: str, *, n: int = 1) -> tuple[float, float, float]:
    """ROUGE-N (Lin, 2004): ``(precision, recall, F1)`` of clipped n-gram overlap with one reference.

    ``recall = sum_g min(c_pred(g), c_ref(g)) / (n-grams in the reference)``; the tokenizer is
    rouge-score's default (lowercase, alphanumeric runs, no stemmer).
    """
    if not target.strip():
        raise ValueError("target (the reference) is empty")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    ref, pred = _ngrams(_rouge_tokens(target), n), _ngrams(_rouge_tokens(prediction), n)
    overlap = sum((ref & pred).values())
    return _prf(overlap, sum(pred.values()), sum(ref.values()))


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Longest common subsequence by dynamic programming, O(len(a) len(b))."""
    row = [0] * (len(b) + 1)
    for x in a:
        prev_diag, row[0] = 0, 0
        for j, y in enumerate(b, start=1):
            prev_diag, row[j] = row[j], prev_diag + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def rouge_l(target: str, prediction: str, *, beta: float = 1.0) -> tuple[float, float, float]:
    """ROUGE-L (Lin, 2004, sec. 3.1): ``(P, R, F_beta)`` from the longest common subsequence, one sentence.

    ``R = LCS / len(ref)``, ``P = LCS / len(pred)``, ``F_beta = (1 + beta^2) P R / (R + beta^2 P)``.
    Lin's eq. 4 leaves ``beta`` free (the DUC evaluations set it very large, so F is almost
    recall); rouge-score, the package most papers use, fixes ``beta = 1`` (F1), our default.
    Tokenizer: rouge-score's default (lowercase, alphanumeric runs, no stemmer).
    """
    if not target.strip():
        raise ValueError("target (the reference) is empty")
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    ref, pred = _rouge_tokens(target), _rouge_tokens(prediction)
    p, r, f1 = _prf(_lcs_length(ref, pred), len(pred), len(ref))
    f = (1 + beta**2) * p * r / (r + beta**2 * p) if p + r else 0.0
    return p, r, f1 if beta == 1.0 else f


def perplexity(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Perplexity (困惑度) ``PPL = exp(-(1/N) sum_t log p(x_t | x_<t))`` = ``exp(cross-entropy)``.

    ``logits`` (N, V) unnormalised scores, ``target`` (N,) token ids; natural log. Differentiable.
    """
    if logits.ndim != 2 or target.shape != logits.shape[:1]:
        raise ValueError(f"logits must be (N, V) and target (N,), got {tuple(logits.shape)} and {tuple(target.shape)}")
    if target.numel() == 0:
        raise ValueError("target is empty: perplexity of zero tokens is undefined")
    log_p = torch.log_softmax(logits, dim=-1)                      # (N, V)
    nll = -log_p.gather(1, target[:, None].long()).squeeze(1)      # (N,)
    return torch.exp(nll.mean())


# ----------------------------------------------------------------------------- generative
def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """Square root of a symmetric PSD matrix by eigendecomposition (negative round-off clipped to 0)."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Frechet distance between Gaussians, the formula behind FID (Heusel et al., 2017, eq. 6).

    ``d^2 = ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2})``. The trace of the (non-symmetric)
    ``(S1 S2)^{1/2}`` equals that of the symmetric PSD ``(S1^{1/2} S2 S1^{1/2})^{1/2}``, computed here
    with two eigendecompositions (no scipy).
    """
    mu1, mu2 = np.asarray(mu1, dtype=float), np.asarray(mu2, dtype=float)
    s1, s2 = np.asarray(sigma1, dtype=float), np.asarray(sigma2, dtype=float)
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"need mu (d,) and sigma (d, d); got {mu1.shape}, {s1.shape}, {mu2.shape}, {s2.shape}")
    root1 = _sqrtm_psd(s1)
    tr_covmean = np.trace(_sqrtm_psd(root1 @ s2 @ root1))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)
