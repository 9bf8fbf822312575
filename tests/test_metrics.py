"""dlbook.metrics against scikit-learn, torchmetrics, sacrebleu, rouge-score and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sklearn.metrics as skm
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook import metrics as m


def labels(n: int, k: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, k, n)


# ----------------------------------------------------------------------------- classification
@pytest.mark.parametrize("n,k,seed", [(20, 2, 0), (200, 5, 1), (57, 7, 2)])
def test_confusion_matrix_matches_sklearn_and_torchmetrics(n, k, seed):
    from torchmetrics.functional.classification import multiclass_confusion_matrix

    t, p = labels(n, k, seed), labels(n, k, seed + 100)
    ours = m.confusion_matrix(t, p, num_classes=k)
    np.testing.assert_array_equal(ours, skm.confusion_matrix(t, p, labels=range(k)))
    tm = multiclass_confusion_matrix(torch.as_tensor(p), torch.as_tensor(t), num_classes=k)
    np.testing.assert_array_equal(ours, tm.numpy())


@pytest.mark.parametrize("average", ["binary", "micro", "macro", "weighted", None])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("beta", [1.0, 0.5, 2.0])
def test_precision_recall_fscore_matches_sklearn(average, seed, beta):
    k = 2 if average == "binary" else 6
    t, p = labels(80, k, seed), labels(80, k, seed + 10)
    p[p == k - 1] = 0                                   # one class is never predicted (zero division)
    ours = m.precision_recall_fscore(t, p, average=average, beta=beta)
    ref = skm.precision_recall_fscore_support(t, p, average=average, beta=beta, zero_division=0.0)[:3]
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("average", ["micro", "macro", "weighted"])
def test_f1_matches_torchmetrics(average):
    from torchmetrics.functional.classification import multiclass_f1_score, multiclass_precision, multiclass_recall

    t, p = labels(150, 5, 3), labels(150, 5, 4)
    args = (torch.as_tensor(p), torch.as_tensor(t))
    ours = m.precision_recall_fscore(t, p, average=average)
    ref = [f(*args, num_classes=5, average=average).item() for f in (multiclass_precision, multiclass_recall, multiclass_f1_score)]
    np.testing.assert_allclose(ours, ref, rtol=1e-6)


def test_accuracy_and_balanced_accuracy():
    t, p = labels(300, 4, 5), labels(300, 4, 6)
    assert m.accuracy(t, p) == pytest.approx(skm.accuracy_score(t, p))
    assert m.balanced_accuracy(t, p) == pytest.approx(skm.balanced_accuracy_score(t, p))
    micro_f1 = m.precision_recall_fscore(t, p, average="micro")[2]
    assert micro_f1 == pytest.approx(m.accuracy(t, p))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=60),
       st.sampled_from(["micro", "macro", "weighted"]))
def test_prf_in_unit_interval_and_f1_below_arithmetic_mean(pairs, average):
    t, p = np.array(pairs).T
    prec, rec, f1 = m.precision_recall_fscore(t, p, average=average, num_classes=4)
    assert 0 <= prec <= 1 and 0 <= rec <= 1 and 0 <= f1 <= 1
    per_p, per_r, per_f = m.precision_recall_fscore(t, p, average=None, num_classes=4)
    assert np.all(per_f <= (per_p + per_r) / 2 + 1e-12)


def test_classification_errors():
    with pytest.raises(ValueError, match="same length"):
        m.confusion_matrix([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="outside the class set"):
        m.confusion_matrix([0, 1, 3], [0, 1, 1], num_classes=3)
    with pytest.raises(ValueError, match="outside the class set"):
        m.confusion_matrix([0, -1], [0, 1])
    with pytest.raises(ValueError, match="average"):
        m.precision_recall_fscore([0, 1], [0, 1], average="samples")
    with pytest.raises(ValueError, match="binary"):
        m.precision_recall_fscore([0, 1, 2], [0, 1, 2], average="binary")
    with pytest.raises(ValueError, match="beta"):
        m.precision_recall_fscore([0, 1], [0, 1], beta=0.0)
    with pytest.raises(ValueError, match="target is empty"):
        m.accuracy([], [])
    with pytest.raises(ValueError, match="integer"):
        m.confusion_matrix([0.5, 1.0], [0, 1])


# ----------------------------------------------------------------------------- ranking
def scores_with_ties(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 2, n)
    t[:2] = [0, 1]
    s = np.round(rng.normal(t * 0.8, 1.0), 1)           # rounding creates many ties
    return t, s


@pytest.mark.parametrize("n,seed", [(10, 0), (100, 1), (500, 2)])
def test_roc_and_pr_match_sklearn(n, seed):
    t, s = scores_with_ties(n, seed)
    fpr, tpr, thr = m.roc_curve(t, s)
    ref = skm.roc_curve(t, s, drop_intermediate=False)
    for a, b in zip((fpr, tpr, thr), ref):
        np.testing.assert_allclose(a, b)
    assert m.roc_auc(t, s) == pytest.approx(skm.roc_auc_score(t, s), abs=1e-12)
    assert m.mann_whitney_auc(t, s) == pytest.approx(skm.roc_auc_score(t, s), abs=1e-12)
    for a, b in zip(m.precision_recall_curve(t, s), skm.precision_recall_curve(t, s)):
        np.testing.assert_allclose(a, b)
    assert m.average_precision(t, s) == pytest.approx(skm.average_precision_score(t, s), abs=1e-12)


def test_auroc_and_ap_match_torchmetrics():
    from torchmetrics.functional.classification import binary_auroc, binary_average_precision

    t, s = scores_with_ties(300, 7)
    args = (torch.as_tensor(s), torch.as_tensor(t))
    assert m.roc_auc(t, s) == pytest.approx(binary_auroc(*args, thresholds=None).item(), abs=1e-6)
    assert m.average_precision(t, s) == pytest.approx(binary_average_precision(*args, thresholds=None).item(), abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(["exp", "sigmoid", "cube", "affine"]))
def test_auc_invariant_to_increasing_transform(seed, name):
    t, s = scores_with_ties(60, seed)
    f = {"exp": np.exp, "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "cube": lambda x: x**3,
         "affine": lambda x: 3 * x + 7}[name]
    auc = m.roc_auc(t, s)
    assert 0 <= auc <= 1
    assert m.roc_auc(t, f(s)) == pytest.approx(auc, abs=1e-12)
    assert m.mann_whitney_auc(t, f(s)) == pytest.approx(auc, abs=1e-12)
    assert 0 < m.average_precision(t, s) <= 1


def test_ndcg_matches_sklearn():
    rng = np.random.default_rng(0)
    for k in (None, 1, 3, 10):
        rel, s = rng.integers(0, 4, 12).astype(float), rng.random(12)
        assert m.ndcg_score(rel, s, k=k) == pytest.approx(skm.ndcg_score(rel[None], s[None], k=k))
    assert m.ndcg_score([3, 2, 0], [3, 2, 1]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="k must be"):
        m.ndcg_score([1, 0], [1, 0], k=0)


def test_ranking_errors():
    with pytest.raises(ValueError, match="binary"):
        m.roc_curve([0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="single class"):
        m.roc_auc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="same length"):
        m.average_precision([0, 1, 1], [0.1, 0.2])


# ----------------------------------------------------------------------------- calibration
@pytest.mark.parametrize("n_bins", [5, 10, 15])
def test_ece_matches_torchmetrics(n_bins):
    from torchmetrics.functional.classification import multiclass_calibration_error

    g = torch.Generator().manual_seed(n_bins)
    logits = torch.randn(400, 6, generator=g) * 3
    logits[:5] = torch.tensor([100.0, 0, 0, 0, 0, 0])      # confidence exactly 1.0
    probs = logits.softmax(-1)
    target = torch.randint(0, 6, (400,), generator=g)
    ref = multiclass_calibration_error(probs, target, num_classes=6, n_bins=n_bins, norm="l1").item()
    assert m.expected_calibration_error(probs, target, n_bins=n_bins) == pytest.approx(ref, abs=1e-6)


def test_calibration_errors_and_range():
    probs = np.full((4, 2), 0.5)
    assert 0 <= m.expected_calibration_error(probs, [0, 1, 0, 1]) <= 1
    with pytest.raises(ValueError, match="probs"):
        m.expected_calibration_error(np.ones(4), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="same length"):
        m.expected_calibration_error(probs, [0, 1, 0])
    with pytest.raises(ValueError, match="n_bins"):
        m.expected_calibration_error(probs, [0, 1, 0, 1], n_bins=0)
    with pytest.raises(ValueError, match="outside the class set"):
        m.expected_calibration_error(probs, [0, 1, 0, 2])


# ----------------------------------------------------------------------------- regression
@pytest.mark.parametrize("n,seed", [(5, 0), (100, 1), (1000, 2)])
def test_regression_matches_sklearn(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.normal(3, 2, n)
    y_hat = y + rng.normal(0, 1, n)
    assert m.mean_absolute_error(y, y_hat) == pytest.approx(skm.mean_absolute_error(y, y_hat))
    assert m.mean_squared_error(y, y_hat) == pytest.approx(skm.mean_squared_error(y, y_hat))
    assert m.root_mean_squared_error(y, y_hat) == pytest.approx(math.sqrt(skm.mean_squared_error(y, y_hat)))
    assert m.r2_score(y, y_hat) == pytest.approx(skm.r2_score(y, y_hat))
    assert m.mean_absolute_percentage_error(y, y_hat) == pytest.approx(skm.mean_absolute_percentage_error(y, y_hat))
    y[0] = 0.0                                                # sklearn's eps floor
    assert m.mean_absolute_percentage_error(y, y_hat) == pytest.approx(skm.mean_absolute_percentage_error(y, y_hat))


def test_regression_matches_torchmetrics():
    from torchmetrics.functional import mean_absolute_error, mean_squared_error, r2_score

    g = torch.Generator().manual_seed(0)
    y, y_hat = torch.randn(200, generator=g, dtype=torch.float64), torch.randn(200, generator=g, dtype=torch.float64)
    assert m.mean_absolute_error(y, y_hat) == pytest.approx(mean_absolute_error(y_hat, y).item())
    assert m.mean_squared_error(y, y_hat) == pytest.approx(mean_squared_error(y_hat, y).item())
    assert m.r2_score(y, y_hat) == pytest.approx(r2_score(y_hat, y).item())


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=40), st.integers(0, 1000))
def test_rmse_at_least_mae_and_r2_at_most_one(y, seed):
    y = np.array(y)
    y_hat = y + np.random.default_rng(seed).normal(0, 1, y.size)
    assert m.root_mean_squared_error(y, y_hat) >= m.mean_absolute_error(y, y_hat) - 1e-9
    if np.ptp(y) > 1e-3:
        assert m.r2_score(y, y_hat) <= 1.0


def test_regression_errors():
    with pytest.raises(ValueError, match="same length"):
        m.mean_absolute_error([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="constant"):
        m.r2_score([2.0, 2.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="1-D"):
        m.mean_squared_error(np.ones((2, 2)), np.ones((2, 2)))


# ----------------------------------------------------------------------------- segmentation
def test_mean_iou_matches_torchmetrics_and_sklearn():
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 4, (3, 16, 16)), rng.integers(0, 4, (3, 16, 16))
    miou, per_class = m.mean_iou(t, p, num_classes=4)
    np.testing.assert_allclose(per_class, skm.jaccard_score(t.ravel(), p.ravel(), average=None))
    assert miou == pytest.approx(skm.jaccard_score(t.ravel(), p.ravel(), average="macro"))
    from torchmetrics.functional.classification import multiclass_jaccard_index

    ref = multiclass_jaccard_index(torch.as_tensor(p).ravel(), torch.as_tensor(t).ravel(), num_classes=4, average="macro")
    assert miou == pytest.approx(ref.item(), abs=1e-6)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.05, 0.95))
def test_dice_iou_relation(seed, density):
    rng = np.random.default_rng(seed)
    a, b = rng.random((12, 12)) < density, rng.random((12, 12)) < density
    if not (a | b).any():
        return
    iou = m.mean_iou(a.astype(int), b.astype(int), num_classes=2)[1][1]
    d = m.dice_score(a, b)
    assert d == pytest.approx(2 * iou / (1 + iou))
    assert d == pytest.approx(skm.f1_score(a.ravel(), b.ravel()))
    assert 0 <= iou <= d <= 1


def test_segmentation_errors():
    with pytest.raises(ValueError, match="same shape"):
        m.mean_iou(np.zeros((2, 2), int), np.zeros((2, 3), int), num_classes=2)
    with pytest.raises(ValueError, match="empty"):
        m.dice_score(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="outside the class set"):
        m.mean_iou(np.array([0, 5]), np.array([0, 1]), num_classes=2)


# ----------------------------------------------------------------------------- text
HYPS = [
    "The cat sat on the mat, didn't it?",
    "A quick brown fox jumps over the lazy dog.",
    "It is 3.5 degrees outside - cold for May.",
    "the the the the",
]
REFS = [[
    "The cat was sitting on the mat, wasn't it?",
    "The quick brown fox jumped over the lazy dog.",
    "It is 3.5 degrees outside, cold for May.",
    "the cat is on the mat",
], [
    "A cat sat on the mat, didn't it?",
    "A fast brown fox jumps over a lazy dog!",
    "Outside it is 3.5 degrees - cold for May.",
    "there is a cat on the mat",
]]


@pytest.mark.parametrize("tokenize", ["13a", "none"])
@pytest.mark.parametrize("n_refs", [1, 2])
def test_corpus_bleu_matches_sacrebleu(tokenize, n_refs):
    import sacrebleu

    refs = REFS[:n_refs]
    ours = m.corpus_bleu(HYPS, refs, tokenize=tokenize)
    ref = sacrebleu.corpus_bleu(HYPS, refs, tokenize=tokenize)
    assert min(ref.precisions) > 0                         # every order has matches: no smoothing involved
    assert ours["score"] == pytest.approx(ref.score, abs=1e-9)
    np.testing.assert_allclose(ours["precisions"], ref.precisions)
    assert ours["bp"] == pytest.approx(ref.bp) and ours["ref_len"] == ref.ref_len and ours["sys_len"] == ref.sys_len


def test_tokenize_13a_matches_sacrebleu():
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    for line in [*HYPS, *REFS[0], "Price: $5,000.50 (approx.) &amp; 10-20 <tags>"]:
        assert m.tokenize_13a(line) == Tokenizer13a()(line).split()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from("the a cat dog sat on mat red big ran".split()), min_size=4, max_size=20))
def test_bleu_self_is_100_and_in_range(words):
    s = " ".join(words)
    assert m.corpus_bleu([s], [[s]])["score"] == pytest.approx(100.0)
    other = " ".join(reversed(words))
    assert 0 <= m.corpus_bleu([other], [[s]])["score"] <= 100


@pytest.mark.parametrize("i", range(4))
def test_rouge_matches_rouge_score(i):
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    ref = scorer.score(REFS[0][i], HYPS[i])
    for ours, key in ((m.rouge_n(REFS[0][i], HYPS[i], n=1), "rouge1"), (m.rouge_n(REFS[0][i], HYPS[i], n=2), "rouge2"),
                      (m.rouge_l(REFS[0][i], HYPS[i]), "rougeL")):
        np.testing.assert_allclose(ours, tuple(ref[key]), rtol=1e-12)


def test_text_errors():
    with pytest.raises(ValueError, match="empty"):
        m.corpus_bleu([], [[]])
    with pytest.raises(ValueError, match="reference stream"):
        m.corpus_bleu(["a b"], [["a b", "c d"]])
    with pytest.raises(ValueError, match="tokenize"):
        m.corpus_bleu(["a"], [["a"]], tokenize="intl")
    with pytest.raises(ValueError, match="target"):
        m.rouge_n("   ", "a b")
    with pytest.raises(ValueError, match="target"):
        m.rouge_l("", "a b")


# ----------------------------------------------------------------------------- perplexity
@pytest.mark.parametrize("n,v", [(1, 3), (17, 10), (64, 50)])
def test_perplexity_matches_torch_and_torchmetrics(n, v):
    from torchmetrics.functional.text import perplexity as tm_perplexity

    g = torch.Generator().manual_seed(n)
    logits = torch.randn(n, v, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, v, (n,), generator=g)
    ours = m.perplexity(logits, target)
    ref = torch.exp(torch.nn.functional.cross_entropy(logits, target))
    torch.testing.assert_close(ours, ref)
    (g1,) = torch.autograd.grad(ours, logits)
    (g2,) = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(g1, g2)
    tm = tm_perplexity(logits.detach().float()[None], target[None])
    torch.testing.assert_close(ours.detach().float(), tm, rtol=1e-5, atol=1e-5)
    assert torch.autograd.gradcheck(lambda x: m.perplexity(x, target), (logits,))


def test_perplexity_uniform_and_errors():
    assert m.perplexity(torch.zeros(5, 10, dtype=torch.float64), torch.arange(5)).item() == pytest.approx(10.0)
    with pytest.raises(ValueError, match="logits"):
        m.perplexity(torch.zeros(5), torch.arange(5))
    with pytest.raises(ValueError, match="empty"):
        m.perplexity(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))


# ----------------------------------------------------------------------------- FID
@pytest.mark.parametrize("d,seed", [(1, 0), (3, 1), (16, 2)])
def test_frechet_distance_matches_scipy_sqrtm(d, seed):
    from scipy import linalg

    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    s1, s2 = a @ a.T + 0.1 * np.eye(d), b @ b.T + 0.1 * np.eye(d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    covmean = linalg.sqrtm(s1 @ s2).real
    ref = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)
    assert m.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-8)
    assert m.frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_1d_closed_form_and_errors():
    # d^2 = (m1 - m2)^2 + (s1 - s2)^2 for 1-D Gaussians with std s1, s2
    assert m.frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4 + 1)
    with pytest.raises(ValueError, match="sigma"):
        m.frechet_distance([0.0, 0.0], np.eye(3), [0.0, 0.0], np.eye(2))


# ============================================================================ oracles on generated inputs
# (issue 12 sec. 4): every function with a peer, on Hypothesis inputs built to hit ties and
# degenerate cases; see tests/strategies.py. Where we differ by design the test asserts the difference.
import warnings  # noqa: E402

from strategies import binary_pairs, bleu_corpus, label_pairs, nonempty_sentences, probability_rows, scored_binary, sentences  # noqa: E402

GEN = settings(max_examples=40, deadline=None)


def _quiet(f, *args, **kwargs):
    """Call a scikit-learn function, silencing its UndefinedMetricWarning (0/0 cases are the point)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f(*args, **kwargs)


@GEN
@given(label_pairs())
def test_generated_confusion_accuracy_balanced_vs_sklearn(case):
    t, p, k = case
    np.testing.assert_array_equal(m.confusion_matrix(t, p, num_classes=k), _quiet(skm.confusion_matrix, t, p, labels=range(k)))
    assert m.accuracy(t, p) == pytest.approx(skm.accuracy_score(t, p))
    assert m.balanced_accuracy(t, p) == pytest.approx(_quiet(skm.balanced_accuracy_score, t, p))


@GEN
@given(label_pairs(), st.sampled_from(["micro", "macro", "weighted", None]), st.sampled_from([0.5, 1.0, 2.0]),
       st.sampled_from([0.0, 1.0]))
def test_generated_prf_multiclass_vs_sklearn(case, average, beta, zd):
    t, p, _ = case
    ours = m.precision_recall_fscore(t, p, average=average, beta=beta, zero_division=zd)
    ref = _quiet(skm.precision_recall_fscore_support, t, p, average=average, beta=beta, zero_division=zd)[:3]
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, atol=1e-12)


@GEN
@given(binary_pairs(), st.sampled_from([0.5, 1.0, 2.0]), st.sampled_from([0.0, 1.0]))
def test_generated_prf_binary_vs_sklearn_including_no_positives(case, beta, zd):
    t, p = case
    ours = m.precision_recall_fscore(t, p, average="binary", beta=beta, zero_division=zd)
    ref = _quiet(skm.precision_recall_fscore_support, t, p, average="binary", beta=beta, zero_division=zd, labels=[0, 1])[:3]
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    if t.max() == 0 and p.max() == 0:            # the degenerate case of issue 13: (0, 0, 0), not (1, 1, 1)
        assert ours == (zd, zd, zd)


@GEN
@given(scored_binary())
def test_generated_roc_pr_ap_vs_sklearn_and_torchmetrics(case):
    from torchmetrics.functional.classification import binary_auroc, binary_average_precision

    t, s = case
    fpr, tpr, thr = m.roc_curve(t, s)
    rf, rt, rth = skm.roc_curve(t, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, rf)
    np.testing.assert_allclose(tpr, rt)
    np.testing.assert_allclose(thr[1:], rth[1:])              # sklearn's first threshold is +inf since 1.3
    auc = m.roc_auc(t, s)
    assert auc == pytest.approx(skm.roc_auc_score(t, s), abs=1e-12)
    assert auc == pytest.approx(m.mann_whitney_auc(t, s), abs=1e-12)   # ties count 1/2 in both
    assert auc == pytest.approx(binary_auroc(torch.tensor(s), torch.tensor(t)).item(), abs=1e-6)
    prec, rec, pthr = m.precision_recall_curve(t, s)
    sp, sr, sthr = skm.precision_recall_curve(t, s)
    np.testing.assert_allclose(prec, sp)
    np.testing.assert_allclose(rec, sr)
    np.testing.assert_allclose(pthr, sthr)
    ap = m.average_precision(t, s)
    assert ap == pytest.approx(skm.average_precision_score(t, s), abs=1e-12)
    assert ap == pytest.approx(binary_average_precision(torch.tensor(s), torch.tensor(t)).item(), abs=1e-6)


@GEN
@given(st.lists(st.integers(0, 1), min_size=1, max_size=20), st.lists(st.floats(0, 1), min_size=20, max_size=20))
def test_generated_single_class_raises_where_sklearn_returns_nan(bits, scores):
    # by design: a curve needs both classes; scikit-learn warns and returns nan/undefined values instead
    t = np.full(len(bits), bits[0])
    with pytest.raises(ValueError, match="single class"):
        m.roc_auc(t, np.array(scores[: len(t)]))
    with pytest.raises(ValueError, match="single class"):
        m.average_precision(t, np.array(scores[: len(t)]))


@GEN
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 4)), min_size=2, max_size=15), st.one_of(st.none(), st.integers(1, 6)))
def test_generated_ndcg_vs_sklearn(pairs, k):
    rel, s = (np.array(v, dtype=float) for v in zip(*pairs))
    strict = -np.argsort(np.argsort(-s, kind="mergesort"), kind="mergesort").astype(float)   # ties broken by position
    ours = m.ndcg_score(rel, s, k=k)
    assert ours == pytest.approx(skm.ndcg_score(rel[None], strict[None], k=k), abs=1e-12)
    if len(np.unique(s)) == len(s):                       # no ties: scikit-learn's tie averaging is moot
        assert ours == pytest.approx(skm.ndcg_score(rel[None], s[None], k=k), abs=1e-12)


def test_ndcg_ties_differ_from_sklearn_by_design():
    # a tie between a relevant and an irrelevant item: we take the first by position, scikit-learn averages
    rel, s = np.array([0.0, 1.0]), np.array([0.5, 0.5])
    assert m.ndcg_score(rel, s) == pytest.approx(1 / np.log2(3))                     # irrelevant item first
    assert skm.ndcg_score(rel[None], s[None]) == pytest.approx((1 + 1 / np.log2(3)) / 2)


@GEN
@given(probability_rows(), st.sampled_from([1, 5, 10, 15]))
def test_generated_calibration_vs_torchmetrics_and_sklearn(case, n_bins):
    from torchmetrics.functional.classification import multiclass_calibration_error

    p, t = case
    ece = m.expected_calibration_error(p, t, n_bins=n_bins)
    ref = multiclass_calibration_error(torch.tensor(p), torch.tensor(t), num_classes=p.shape[1], n_bins=n_bins, norm="l1")
    assert ece == pytest.approx(ref.item(), abs=1e-6)
    labels = list(range(p.shape[1]))
    assert m.brier_score(t, p) == pytest.approx(skm.brier_score_loss(t, p, labels=labels), abs=1e-12)
    assert m.log_loss(t, p) == pytest.approx(skm.log_loss(t, p, labels=labels), abs=1e-9)
    if p.shape[1] == 2:                                   # binary: P(y = 1) alone gives the same numbers
        assert m.brier_score(t, p[:, 1]) == pytest.approx(skm.brier_score_loss(t, p[:, 1], labels=[0, 1]), abs=1e-12)
        assert m.log_loss(t, p[:, 1]) == pytest.approx(skm.log_loss(t, p[:, 1], labels=[0, 1]), abs=1e-9)


def test_proper_scores_minimised_by_the_truth_and_errors():
    q = np.linspace(0.01, 0.99, 99)                       # reported probability of class 1
    t = np.r_[np.ones(3), np.zeros(7)].astype(int)        # true frequency 0.3
    brier = [m.brier_score(t, np.full(10, x)) for x in q]
    nll = [m.log_loss(t, np.full(10, x)) for x in q]
    assert q[np.argmin(brier)] == pytest.approx(0.3) and q[np.argmin(nll)] == pytest.approx(0.3)
    assert m.log_loss([1], [0.0]) == math.inf and m.log_loss([1], [0.0], eps=1e-15) < 40
    with pytest.raises(ValueError, match=r"probs must lie in \[0, 1\]"):
        m.brier_score([0, 1], [0.5, 1.5])
    with pytest.raises(ValueError, match="same length"):
        m.log_loss([0, 1, 1], [0.5, 0.5])
    with pytest.raises(ValueError, match="eps"):
        m.log_loss([0, 1], [0.5, 0.5], eps=0.7)


@GEN
@given(st.lists(st.tuples(st.integers(-5, 5), st.integers(-5, 5)), min_size=2, max_size=30))
def test_generated_regression_vs_sklearn(pairs):
    y, yhat = (np.array(v, dtype=float) for v in zip(*pairs))
    assert m.mean_absolute_error(y, yhat) == pytest.approx(skm.mean_absolute_error(y, yhat))
    assert m.mean_squared_error(y, yhat) == pytest.approx(skm.mean_squared_error(y, yhat))
    assert m.root_mean_squared_error(y, yhat) == pytest.approx(skm.root_mean_squared_error(y, yhat))
    assert m.mean_absolute_percentage_error(y, yhat) == pytest.approx(skm.mean_absolute_percentage_error(y, yhat))
    if np.ptp(y) > 0:
        assert m.r2_score(y, yhat) == pytest.approx(skm.r2_score(y, yhat))
    else:                                                 # by design: we raise where sklearn returns 1.0 or 0.0
        with pytest.raises(ValueError, match="constant"):
            m.r2_score(y, yhat)


@GEN
@given(st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_generated_segmentation_vs_sklearn(k, seed):
    rng = np.random.default_rng(seed)
    t, p = rng.integers(0, k, (6, 7)), rng.integers(0, k, (6, 7))
    agree = rng.random(p.shape) < 0.5
    p[agree] = t[agree]                                   # half the pixels right
    miou, per_class = m.mean_iou(t, p, num_classes=k)
    ref = _quiet(skm.jaccard_score, t.ravel(), p.ravel(), labels=range(k), average=None, zero_division=0)
    present = np.isin(np.arange(k), np.r_[t.ravel(), p.ravel()])
    np.testing.assert_allclose(per_class[present], ref[present])
    assert np.isnan(per_class[~present]).all()             # by design: absent class -> NaN, skipped by the mean
    assert miou == pytest.approx(ref[present].mean())
    a, b = t == 0, p == 0
    if a.any() or b.any():                                # Dice is the F1 of the pixels
        assert m.dice_score(a, b) == pytest.approx(skm.f1_score(a.ravel(), b.ravel()))


@settings(max_examples=60, deadline=None)
@given(bleu_corpus(), st.sampled_from(["none", "floor", "add-k", "exp"]), st.booleans(), st.sampled_from(["13a", "none"]))
def test_generated_corpus_bleu_vs_sacrebleu(corpus, smooth, eff, tok):
    import sacrebleu

    hyps, refs = corpus
    ours = m.corpus_bleu(hyps, refs, smooth_method=smooth, effective_order=eff, tokenize=tok)
    ref = sacrebleu.BLEU(smooth_method=smooth, effective_order=eff, tokenize=tok).corpus_score(hyps, refs)
    assert ours["score"] == pytest.approx(ref.score, abs=1e-9)
    if ref.score > 0:
        np.testing.assert_allclose(ours["precisions"], ref.precisions, atol=1e-9)
    assert (ours["sys_len"], ours["ref_len"]) == (ref.sys_len, ref.ref_len) and ours["bp"] == pytest.approx(ref.bp)


@GEN
@given(sentences, st.lists(nonempty_sentences, min_size=1, max_size=3), st.sampled_from(["none", "floor", "add-k", "exp"]))
def test_generated_sentence_bleu_vs_sacrebleu(hyp, refs, smooth):
    import sacrebleu

    ours = m.sentence_bleu(hyp, refs, smooth_method=smooth)
    assert ours["score"] == pytest.approx(sacrebleu.sentence_bleu(hyp, refs, smooth_method=smooth).score, abs=1e-9)


def test_bleu_smoothing_rescues_a_zero_precision():
    # no 4-gram matches: plain BLEU is 0, sacrebleu's default exp smoothing is not
    hyp, ref = ["the cat sat on a mat"], [["the cat sat upon the mat"]]
    assert m.corpus_bleu(hyp, ref, smooth_method="none")["score"] == 0.0
    assert m.corpus_bleu(hyp, ref)["score"] > 0
    with pytest.raises(ValueError, match="smooth_method"):
        m.corpus_bleu(hyp, ref, smooth_method="laplace")
    with pytest.raises(TypeError, match="references"):
        m.sentence_bleu("a b", "a b")


@GEN
@given(nonempty_sentences, sentences)
def test_generated_rouge_vs_rouge_score(target, prediction):
    from rouge_score import rouge_scorer

    ref = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False).score(target, prediction)
    np.testing.assert_allclose(m.rouge_n(target, prediction, n=1), tuple(ref["rouge1"]), atol=1e-12)
    np.testing.assert_allclose(m.rouge_n(target, prediction, n=2), tuple(ref["rouge2"]), atol=1e-12)
    np.testing.assert_allclose(m.rouge_l(target, prediction), tuple(ref["rougeL"]), atol=1e-12)


@GEN
@given(nonempty_sentences, nonempty_sentences, st.sampled_from([0.5, 2.0, 8.0]))
def test_rouge_l_beta(target, prediction, beta):
    p, r, f1 = m.rouge_l(target, prediction)
    _, _, fb = m.rouge_l(target, prediction, beta=beta)
    expected = (1 + beta**2) * p * r / (r + beta**2 * p) if p + r else 0.0
    assert fb == pytest.approx(expected)
    assert min(p, r) - 1e-12 <= fb <= max(p, r) + 1e-12           # a weighted harmonic mean
    if beta > 1 and p + r:
        assert abs(fb - r) <= abs(f1 - r) + 1e-12                  # large beta moves F towards recall (Lin's DUC setting)
    with pytest.raises(ValueError, match="beta"):
        m.rouge_l(target, prediction, beta=0.0)
