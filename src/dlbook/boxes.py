"""Boxes for detection metrics: area, pairwise IoU, NMS, Soft-NMS, VOC and COCO average precision.

Reference implementations for the detection sections of :doc:`/chapters/metrics/index`.

Conventions (stated once, used everywhere):

* Boxes are float tensors of shape (N, 4) in ``xyxy`` format ``(x1, y1, x2, y2)`` with
  ``x1 <= x2`` and ``y1 <= y2``, continuous coordinates: area ``(x2 - x1)(y2 - y1)``, no "+1"
  (COCO's convention; the PASCAL VOC devkit adds 1 pixel to widths, we do not).
* Names and argument order follow ``torchvision.ops`` (``box_area``, ``box_iou``, ``nms``).
* A detection set is a list over images of dicts: ground truth ``{"boxes", "labels"}``,
  detections ``{"boxes", "scores", "labels"}`` (the layout of torchmetrics' mAP).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["average_precision_voc", "box_area", "box_iou", "coco_map", "detection_pr", "nms", "soft_nms"]


def _check_boxes(name: str, boxes: Tensor) -> Tensor:
    if not isinstance(boxes, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(boxes).__name__}")
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4) in xyxy format, got {tuple(boxes.shape)}")
    bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(f"{name}[{i}] = {boxes[i].tolist()} has x2 < x1 or y2 < y1 (xyxy format expected)")
    return boxes


def box_area(boxes: Tensor) -> Tensor:
    """Area ``(x2 - x1)(y2 - y1)`` of each box; (N, 4) -> (N,)."""
    b = _check_boxes("boxes", boxes)
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise Intersection over Union (交并比) ``|A n B| / |A u B|``; (N, 4), (M, 4) -> (N, M).

    ``|A u B| = |A| + |B| - |A n B|``. Two zero-area boxes give 0/0; we return 0 there.
    """
    area1, area2 = box_area(boxes1), box_area(boxes2)                   # (N,), (M,)
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])   # (N, M, 2)
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)                          # (N, M, 2)
    inter = wh[..., 0] * wh[..., 1]                                      # (N, M)
    union = area1[:, None] + area2[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), 0.0)


def _check_scores(boxes: Tensor, scores: Tensor) -> None:
    _check_boxes("boxes", boxes)
    if scores.shape != boxes.shape[:1]:
        raise ValueError(f"scores must have shape ({boxes.shape[0]},), got {tuple(scores.shape)}")


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression (非极大值抑制); returns kept indices, highest score first.

    Repeat: keep the highest-scoring remaining box, delete every remaining box whose IoU with it
    is ``> iou_threshold`` (strictly greater, as torchvision and ONNX NonMaxSuppression).
    Ties in score keep the lower index first (stable sort).
    """
    _check_scores(boxes, scores)
    iou = box_iou(boxes, boxes)                                 # (N, N)
    order = torch.sort(scores, descending=True, stable=True).indices
    alive = torch.ones(len(order), dtype=torch.bool)
    keep = []
    for pos, i in enumerate(order.tolist()):
        if not alive[pos]:
            continue
        keep.append(i)
        alive[pos + 1:] &= iou[i, order[pos + 1:]] <= iou_threshold
    return torch.tensor(keep, dtype=torch.long)


def soft_nms(
    boxes: Tensor, scores: Tensor, *, method: str = "gaussian", sigma: float = 0.5,
    iou_threshold: float = 0.3, score_threshold: float = 0.001,
) -> tuple[Tensor, Tensor]:
    """Soft-NMS (Bodla et al., 2017, Algorithm 1): decay overlapping scores instead of deleting.

    Repeat: take the remaining box M with the highest *current* score, then rescale every other
    remaining score ``s_i <- s_i f(IoU(M, b_i))`` with
    ``"gaussian"``: ``f = exp(-IoU^2 / sigma)`` (the paper's eq. 3, no factor 2);
    ``"linear"``: ``f = 1 - IoU`` if ``IoU >= iou_threshold`` else 1;
    ``"hard"``: ``f = 0`` if ``IoU > iou_threshold`` else 1, which is exactly :func:`nms`.
    Boxes whose score falls below ``score_threshold`` are dropped. Returns ``(indices, scores)``
    in selection order, with the decayed scores.
    """
    if method not in ("gaussian", "linear", "hard"):
        raise ValueError(f"method must be 'gaussian', 'linear' or 'hard', got {method!r}")
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    _check_scores(boxes, scores)
    iou = box_iou(boxes, boxes)                                  # (N, N)
    s = scores.clone().to(torch.float64)
    remaining, keep, kept_scores = list(range(len(s))), [], []
    while remaining:
        m = max(remaining, key=lambda j: (s[j].item(), -j))     # highest score, lowest index on ties
        if s[m] < score_threshold:
            break
        keep.append(m)
        kept_scores.append(s[m].item())
        remaining.remove(m)
        rest = torch.tensor(remaining, dtype=torch.long)
        o = iou[m, rest].to(torch.float64)
        if method == "gaussian":
            s[rest] = s[rest] * torch.exp(-(o**2) / sigma)
        elif method == "linear":
            s[rest] = s[rest] * torch.where(o >= iou_threshold, 1 - o, 1.0)
        else:
            s[rest] = torch.where(o > iou_threshold, 0.0, s[rest])
    return torch.tensor(keep, dtype=torch.long), torch.tensor(kept_scores, dtype=torch.float64)


# ----------------------------------------------------------------------------- average precision
def detection_pr(
    preds: list[dict], target: list[dict], *, label: int, iou_threshold: float = 0.5, max_detections: int = 100,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Greedy matching of one class; returns ``(tp, scores, n_gt)`` of the score-sorted detections.

    Per image, detections are visited by decreasing score (top ``max_detections``); each is a true
    positive if some still-unmatched ground truth has ``IoU >= iou_threshold`` (the highest-IoU one
    is taken), else a false positive (duplicates included). This is COCOeval's ``evaluateImg`` for
    area range "all" with no crowd boxes; detections are then merged over images by a stable sort.

    ``max_detections`` is COCO's ``maxDets``: per image *and class*, only the top-scoring
    detections count (ties keep input order, COCOeval's mergesort). Out of scope, by design:
    COCO's area ranges (small/medium/large: ground truth outside the range is ignored, and so
    are unmatched detections outside it), ``iscrowd`` regions, and PASCAL VOC's rules, which
    differ in two ways: a detection is compared only with its single max-IoU ground truth (if
    that one is taken, it is a false positive even when another object overlaps it enough), and
    objects marked "difficult" neither count in ``n_gt`` nor make a matched detection a false
    positive. :func:`coco_map` therefore equals pycocotools' ``stats[0:3]`` (area "all"), not
    the VOC devkit.
    """
    if len(preds) != len(target):
        raise ValueError(f"preds and target must list the same images, got {len(preds)} and {len(target)}")
    tps, scores, n_gt = [], [], 0
    for p, t in zip(preds, target):
        gt = t["boxes"][t["labels"] == label]
        keep = p["labels"] == label
        dt, sc = p["boxes"][keep], p["scores"][keep]
        order = torch.sort(sc, descending=True, stable=True).indices[:max_detections]
        dt, sc = dt[order], sc[order]
        n_gt += len(gt)
        iou = box_iou(dt, gt) if len(gt) and len(dt) else torch.zeros(len(dt), len(gt))
        taken = torch.zeros(len(gt), dtype=torch.bool)
        for d in range(len(dt)):
            cand = torch.where(taken | (iou[d] < iou_threshold), -1.0, iou[d])
            hit = len(gt) > 0 and cand.max() >= 0
            if hit:  # the highest IoU; on an exact tie the *last* such ground truth, as COCOeval's loop
                taken[len(gt) - 1 - int(cand.flip(0).argmax())] = True
            tps.append(bool(hit))
        scores.extend(sc.tolist())
    order = np.argsort(-np.asarray(scores, dtype=float), kind="mergesort")
    return np.asarray(tps, dtype=bool)[order], np.asarray(scores, dtype=float)[order], n_gt


def average_precision_voc(recall: np.ndarray, precision: np.ndarray, *, use_11_point: bool = False) -> float:
    """PASCAL VOC AP from a PR curve (recall increasing), Everingham et al. (2010), sec. 4.2.

    11-point (VOC2007): ``AP = (1/11) sum_{t in 0, .1, .., 1} max_{r >= t} p(r)``.
    All-point (VOC2010+): area under the precision envelope ``p_interp(r) = max_{r' >= r} p(r')``.
    """
    recall, precision = np.asarray(recall, dtype=float), np.asarray(precision, dtype=float)
    if recall.shape != precision.shape:
        raise ValueError(f"recall and precision must have the same shape, got {recall.shape} and {precision.shape}")
    if use_11_point:
        return float(np.mean([precision[recall >= t].max(initial=0.0) for t in np.linspace(0, 1, 11)]))
    r = np.r_[0.0, recall, 1.0]
    p = np.maximum.accumulate(np.r_[0.0, precision, 0.0][::-1])[::-1]     # envelope
    step = np.nonzero(np.diff(r))[0]
    return float(np.sum((r[step + 1] - r[step]) * p[step + 1]))


def _coco_ap(tp: np.ndarray, n_gt: int, rec_thrs: np.ndarray) -> float:
    """COCO's 101-point AP: precision envelope sampled at ``rec_thrs`` by searchsorted, 0 beyond."""
    tp_cum, fp_cum = np.cumsum(tp), np.cumsum(~tp)
    recall = tp_cum / n_gt
    precision = tp_cum / (tp_cum + fp_cum + np.spacing(1))              # COCOeval's eps
    precision = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
    idx = np.searchsorted(recall, rec_thrs, side="left")
    q = np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)] if len(precision) else 0.0, 0.0)
    return float(np.mean(q))


def coco_map(preds: list[dict], target: list[dict], *, iou_thresholds=None, max_detections: int = 100) -> dict[str, float]:
    """COCO AP@[.50:.95] (Lin et al., 2014; ``pycocotools.cocoeval``): mean over classes and IoU thresholds.

    For each class with ground truth and each IoU threshold ``t in {0.50, 0.55, .., 0.95}``:
    match with :func:`detection_pr`, take the precision envelope, average it at the 101 recall
    points ``0, 0.01, .., 1``. Returns ``{"map", "map_50", "map_75", "per_threshold"}`` (no
    size breakdown, no crowd boxes). Classes are those present in ``target``.
    """
    iou_thresholds = np.linspace(0.5, 0.95, 10) if iou_thresholds is None else np.asarray(iou_thresholds)
    rec_thrs = np.linspace(0, 1, 101)
    labels = sorted(set(torch.cat([t["labels"] for t in target]).tolist()))
    if not labels:
        raise ValueError("target holds no ground-truth boxes: AP is undefined")
    ap = np.zeros((len(iou_thresholds), len(labels)))
    for i, thr in enumerate(iou_thresholds):
        for k, label in enumerate(labels):
            tp, _, n_gt = detection_pr(preds, target, label=label, iou_threshold=thr, max_detections=max_detections)
            ap[i, k] = _coco_ap(tp, n_gt, rec_thrs)
    per_threshold = ap.mean(axis=1)
    out = {"map": float(per_threshold.mean()), "per_threshold": per_threshold}
    for name, t in (("map_50", 0.5), ("map_75", 0.75)):
        hit = np.isclose(iou_thresholds, t)
        out[name] = float(per_threshold[hit][0]) if hit.any() else float("nan")
    return out
