"""dlbook.boxes against torch-free oracles: pycocotools (IoU, COCO AP) and onnxruntime (NMS)."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook.boxes import average_precision_voc, box_area, box_iou, coco_map, detection_pr, nms, soft_nms


def random_boxes(n: int, seed: int, *, size: float = 100.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * size
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * size / 3 + 1
    return torch.cat([xy, xy + wh], dim=1)


def to_xywh(b: torch.Tensor) -> np.ndarray:
    b = b.numpy().astype(float)
    return np.c_[b[:, :2], b[:, 2:] - b[:, :2]]


# ----------------------------------------------------------------------------- IoU
@pytest.mark.parametrize("n,m", [(1, 1), (7, 5), (30, 40)])
def test_box_iou_matches_pycocotools(n, m):
    from pycocotools import mask as mask_utils

    a, b = random_boxes(n, 0), random_boxes(m, 1)
    b[0] = a[0]                                           # identical pair
    if m > 2 and n > 1:
        b[1] = torch.tensor([a[1, 0] + 1, a[1, 1] + 1, a[1, 0] + 2, a[1, 1] + 2], dtype=torch.float64)  # nested
        b[2] = torch.tensor([500.0, 500.0, 510.0, 510.0], dtype=torch.float64)  # disjoint
    ours = box_iou(a, b)
    ref = mask_utils.iou(to_xywh(a), to_xywh(b), [0] * m)
    torch.testing.assert_close(ours, torch.as_tensor(ref), rtol=1e-12, atol=1e-12)


def test_box_area_and_iou_shape():
    b = torch.tensor([[0.0, 0, 2, 3], [1, 1, 1, 5]])
    torch.testing.assert_close(box_area(b), torch.tensor([6.0, 0.0]))
    assert box_iou(b, b[:1]).shape == (2, 1)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.1, 100.0))
def test_iou_in_range_symmetric_and_scale_invariant(seed, scale):
    a, b = random_boxes(5, seed), random_boxes(4, seed + 1)
    iou = box_iou(a, b)
    assert ((iou >= 0) & (iou <= 1 + 1e-12)).all()
    torch.testing.assert_close(iou, box_iou(b, a).T)
    torch.testing.assert_close(box_iou(a * scale, b * scale), iou, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(torch.diagonal(box_iou(a, a)), torch.ones(5, dtype=torch.float64))


def test_box_errors():
    with pytest.raises(ValueError, match="x2 < x1"):
        box_area(torch.tensor([[0.0, 0, 2, 2], [3.0, 0, 1, 2]]))
    with pytest.raises(ValueError, match=r"boxes.*\(N, 4\)"):
        box_area(torch.zeros(3, 5))
    with pytest.raises(TypeError, match="boxes"):
        box_area([[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="scores"):
        nms(random_boxes(3, 0), torch.rand(4), 0.5)
    with pytest.raises(ValueError, match="method"):
        soft_nms(random_boxes(3, 0), torch.rand(3), method="cubic")
    with pytest.raises(ValueError, match="sigma"):
        soft_nms(random_boxes(3, 0), torch.rand(3), sigma=0.0)


# ----------------------------------------------------------------------------- NMS
def onnx_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> np.ndarray:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    inputs = [
        helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, None, 4]),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1, None]),
        helper.make_tensor_value_info("max_out", TensorProto.INT64, [1]),
        helper.make_tensor_value_info("iou", TensorProto.FLOAT, [1]),
        helper.make_tensor_value_info("score_thr", TensorProto.FLOAT, [1]),
    ]
    out = helper.make_tensor_value_info("selected", TensorProto.INT64, [None, 3])
    node = helper.make_node("NonMaxSuppression", ["boxes", "scores", "max_out", "iou", "score_thr"], ["selected"], center_point_box=0)
    model = helper.make_model(helper.make_graph([node], "nms", inputs, [out]), opset_imports=[helper.make_opsetid("", 13)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    # ONNX uses (y1, x1, y2, x2) by default; IoU is symmetric in the axes, so xyxy works unchanged
    feeds = {
        "boxes": boxes.numpy().astype(np.float32)[None],
        "scores": scores.numpy().astype(np.float32)[None, None],
        "max_out": np.array([10_000], dtype=np.int64),
        "iou": np.array([iou_threshold], dtype=np.float32),
        "score_thr": np.array([0.0], dtype=np.float32),
    }
    return sess.run(None, feeds)[0][:, 2]


@pytest.mark.parametrize("iou_threshold", [0.3, 0.5, 0.7])
def test_nms_matches_onnxruntime(iou_threshold):
    boxes = random_boxes(200, 3).float()
    scores = torch.rand(200, generator=torch.Generator().manual_seed(4))
    ours = nms(boxes, scores, iou_threshold)
    np.testing.assert_array_equal(ours.numpy(), onnx_nms(boxes, scores, iou_threshold))


@pytest.mark.parametrize("iou_threshold", [0.3, 0.5])
def test_soft_nms_hard_step_is_nms(iou_threshold):
    boxes, scores = random_boxes(80, 5), torch.rand(80, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    keep, kept = soft_nms(boxes, scores, method="hard", iou_threshold=iou_threshold, score_threshold=1e-12)
    torch.testing.assert_close(keep, nms(boxes, scores, iou_threshold))
    torch.testing.assert_close(kept, scores[keep])


def test_soft_nms_keeps_occluded_object():
    boxes = torch.tensor([[0.0, 0, 10, 10], [4, 0, 14, 10], [50, 50, 60, 60]])  # IoU(0, 1) = 0.4286
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert nms(boxes, scores, 0.3).tolist() == [0, 2]
    keep, s = soft_nms(boxes, scores, method="gaussian", sigma=0.5)
    assert sorted(keep.tolist()) == [0, 1, 2]
    iou = box_iou(boxes[:1], boxes[1:2]).item()
    assert s[keep.tolist().index(1)].item() == pytest.approx(0.8 * np.exp(-iou**2 / 0.5))
    keep_lin, s_lin = soft_nms(boxes, scores, method="linear", iou_threshold=0.3)
    assert s_lin[keep_lin.tolist().index(1)].item() == pytest.approx(0.8 * (1 - iou))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.05, 0.95))
def test_nms_kept_boxes_do_not_overlap(seed, thr):
    boxes = random_boxes(25, seed)
    scores = torch.rand(25, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    keep = nms(boxes, scores, thr)
    iou = box_iou(boxes[keep], boxes[keep]).fill_diagonal_(0)
    assert (iou <= thr).all()
    assert (scores[keep].diff() <= 0).all()


# ----------------------------------------------------------------------------- AP
def synthetic_detections(seed: int, n_images: int = 6, n_classes: int = 3):
    rng = np.random.default_rng(seed)
    target, preds = [], []
    for _ in range(n_images):
        n = int(rng.integers(1, 6))
        xy = rng.uniform(0, 200, (n, 2))
        gt = np.c_[xy, xy + rng.uniform(10, 60, (n, 2))]
        gl = rng.integers(0, n_classes, n)
        det = gt + rng.normal(0, 4, gt.shape)                       # jittered true detections
        det[:, 2:] = np.maximum(det[:, 2:], det[:, :2] + 1)
        found = rng.random(n) < 0.85                                # some objects are missed
        m = int(rng.integers(0, 4))                                 # plus false positives
        fxy = rng.uniform(0, 200, (m, 2))
        det = np.r_[det[found], np.c_[fxy, fxy + rng.uniform(10, 60, (m, 2))]]
        dl = np.r_[gl[found], rng.integers(0, n_classes, m)]
        target.append({"boxes": torch.as_tensor(gt), "labels": torch.as_tensor(gl)})
        preds.append({"boxes": torch.as_tensor(det), "scores": torch.as_tensor(rng.random(len(det))), "labels": torch.as_tensor(dl)})
    return preds, target


def pycocotools_stats(preds, target, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, dets = [], [], []
    for img_id, (p, t) in enumerate(zip(preds, target), start=1):
        images.append({"id": img_id, "width": 400, "height": 400})
        for box, lab in zip(to_xywh(t["boxes"]), t["labels"].tolist()):
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": lab + 1, "bbox": box.tolist(),
                         "area": float(box[2] * box[3]), "iscrowd": 0})
        for box, lab, s in zip(to_xywh(p["boxes"]), p["labels"].tolist(), p["scores"].tolist()):
            dets.append({"image_id": img_id, "category_id": lab + 1, "bbox": box.tolist(), "score": s})
    gt_file, dt_file = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_file.write_text(json.dumps({"images": images, "annotations": anns,
                                   "categories": [{"id": k + 1, "name": str(k)} for k in range(3)]}))
    dt_file.write_text(json.dumps(dets))
    with contextlib.redirect_stdout(io.StringIO()):          # pycocotools prints progress
        coco_gt = COCO(str(gt_file))
        coco_dt = coco_gt.loadRes(str(dt_file))
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coco_map_matches_pycocotools(seed, tmp_path):
    preds, target = synthetic_detections(seed)
    ev = pycocotools_stats(preds, target, tmp_path)
    ours = coco_map(preds, target)
    assert ours["map"] == pytest.approx(ev.stats[0], abs=1e-9)
    assert ours["map_50"] == pytest.approx(ev.stats[1], abs=1e-9)
    assert ours["map_75"] == pytest.approx(ev.stats[2], abs=1e-9)
    prec = ev.eval["precision"][:, :, :, 0, 2]                # (T, R, K) at area "all", maxDets 100
    per_t = np.array([np.mean(p[:, (p > -1).all(axis=0)]) for p in prec])
    np.testing.assert_allclose(ours["per_threshold"], per_t, atol=1e-9)


def test_voc_ap_known_curve():
    # TP, FP, TP, FP, TP with 4 ground truths
    tp = np.array([1, 0, 1, 0, 1], dtype=bool)
    recall = np.cumsum(tp) / 4
    precision = np.cumsum(tp) / np.arange(1, 6)
    # all-point: envelope 1 on (0, .25], 2/3 on (.25, .5], 3/5 on (.5, .75], 0 beyond
    assert average_precision_voc(recall, precision) == pytest.approx(0.25 * (1 + 2 / 3 + 3 / 5))
    # 11-point: t = 0, .1, .2 -> 1; .3, .4, .5 -> 2/3; .6, .7 -> 3/5; .8, .9, 1 -> 0
    assert average_precision_voc(recall, precision, use_11_point=True) == pytest.approx((3 + 2 + 1.2) / 11)
    with pytest.raises(ValueError, match="recall and precision"):
        average_precision_voc(recall, precision[:-1])


def test_detection_pr_duplicate_is_false_positive():
    gt = {"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([0])}
    dt = {"boxes": torch.tensor([[0.0, 0, 10, 10], [0.5, 0, 10, 10]]), "scores": torch.tensor([0.9, 0.8]),
          "labels": torch.tensor([0, 0])}
    tp, scores, n_gt = detection_pr([dt], [gt], label=0)
    assert tp.tolist() == [True, False] and n_gt == 1
    with pytest.raises(ValueError, match="same images"):
        detection_pr([dt], [gt, gt], label=0)
    with pytest.raises(ValueError, match="no ground-truth"):
        coco_map([dt], [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}])


# ============================================================================ oracles on generated inputs
# (issue 12 sec. 4): pycocotools and onnxruntime on Hypothesis scenes with ties, empty images,
# empty predictions and more than 100 detections per image (tests/strategies.py).
from strategies import detection_scene, int_boxes  # noqa: E402


def coco_eval(preds, target, *, max_dets=(1, 10, 100), n_classes=3):
    """pycocotools' COCOeval on in-memory datasets (loadRes cannot take an empty result list)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, dets = [], [], []
    for img_id, (p, t) in enumerate(zip(preds, target), start=1):
        images.append({"id": img_id, "width": 400, "height": 400})
        for box, lab in zip(to_xywh(t["boxes"]).reshape(-1, 4), t["labels"].tolist()):
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": lab + 1, "bbox": box.tolist(),
                         "area": float(box[2] * box[3]), "iscrowd": 0})
        for box, lab, s in zip(to_xywh(p["boxes"]).reshape(-1, 4), p["labels"].tolist(), p["scores"].tolist()):
            x, y, w, h = box.tolist()
            dets.append({"id": len(dets) + 1, "image_id": img_id, "category_id": lab + 1, "bbox": [x, y, w, h],
                         "score": s, "area": w * h, "iscrowd": 0})
    cats = [{"id": k + 1, "name": str(k)} for k in range(n_classes)]
    with contextlib.redirect_stdout(io.StringIO()):          # pycocotools prints progress
        coco_gt, coco_dt = COCO(), COCO()
        coco_gt.dataset = {"images": images, "annotations": anns, "categories": cats}
        coco_dt.dataset = {"images": images, "annotations": dets, "categories": cats}
        coco_gt.createIndex()
        coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.maxDets = list(max_dets)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def _check_scene_against_coco(preds, target, max_dets=100):
    ev = coco_eval(preds, target, max_dets=(1, 2, max_dets))   # distinct entries: COCOeval looks maxDets up by value
    if sum(len(t["labels"]) for t in target) == 0:               # no ground truth anywhere: undefined
        with pytest.raises(ValueError, match="no ground-truth"):
            coco_map(preds, target, max_detections=max_dets)
        assert ev.stats[0] == -1                                   # pycocotools' "undefined" marker
        return
    ours = coco_map(preds, target, max_detections=max_dets)
    prec = ev.eval["precision"][:, :, :, 0, 2]                 # (T, R, K) at area "all", maxDets[2]
    mean_defined = lambda a: a[a > -1].mean()                  # COCOeval's _summarize
    assert ours["map"] == pytest.approx(mean_defined(prec), abs=1e-9)
    assert ours["map_50"] == pytest.approx(mean_defined(prec[0]), abs=1e-9)
    assert ours["map_75"] == pytest.approx(mean_defined(prec[5]), abs=1e-9)
    if max_dets == 100:                                        # the printed summary uses maxDets = 100
        assert ours["map"] == pytest.approx(ev.stats[0], abs=1e-9)
        assert ours["map_50"] == pytest.approx(ev.stats[1], abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(detection_scene())
def test_generated_coco_map_vs_pycocotools(scene):
    _check_scene_against_coco(*scene)


@settings(max_examples=12, deadline=None)
@given(detection_scene(many=True, max_images=3), st.sampled_from([100, 10]))
def test_generated_coco_map_past_max_dets_vs_pycocotools(scene, max_dets):
    preds, target = scene
    assert max(len(p["scores"]) for p in preds) > 100
    _check_scene_against_coco(preds, target, max_dets=max_dets)


def test_coco_map_empty_predictions_is_zero():
    target = [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([1])}]
    preds = [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}]
    ev = coco_eval(preds, target)
    assert coco_map(preds, target)["map"] == 0.0 == ev.stats[0]


def test_detection_pr_iou_tie_goes_to_the_last_ground_truth_like_cocoeval():
    # two identical objects; the first detection may take either, the second then needs the other one:
    # COCOeval's loop gives an exact IoU tie to the later ground truth
    gt = {"boxes": torch.tensor([[0.0, 0, 10, 10], [0.0, 0, 10, 10], [20.0, 0, 30, 10]]), "labels": torch.zeros(3, dtype=torch.long)}
    dt = {"boxes": torch.tensor([[0.0, 0, 10, 10], [0.0, 0, 10, 10]]), "scores": torch.tensor([0.9, 0.8]),
          "labels": torch.zeros(2, dtype=torch.long)}
    tp, _, _ = detection_pr([dt], [gt], label=0)
    assert tp.tolist() == [True, True]
    _check_scene_against_coco([dt], [gt])


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12).flatmap(lambda n: st.tuples(int_boxes(n), st.lists(st.integers(1, 4), min_size=n, max_size=n))),
       st.sampled_from([0.0, 0.3, 0.5, 0.7]))
def test_generated_nms_vs_onnxruntime_with_tied_scores_and_duplicates(case, thr):
    boxes, levels = case
    scores = torch.tensor(levels, dtype=torch.float32) / 4               # 4 score levels: many ties
    ours = nms(boxes.float(), scores, thr)
    np.testing.assert_array_equal(ours.numpy(), onnx_nms(boxes.float(), scores, thr))
    keep_step, _ = soft_nms(boxes.float(), scores, method="hard", iou_threshold=thr, score_threshold=1e-9)
    assert torch.equal(keep_step, ours)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8).flatmap(lambda n: int_boxes(n, allow_empty_area=True)),
       st.integers(1, 8).flatmap(lambda n: int_boxes(n, allow_empty_area=True)))
def test_generated_box_iou_vs_pycocotools(a, b):
    from pycocotools import mask as mask_utils

    ours = box_iou(a, b).numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = mask_utils.iou(to_xywh(a).reshape(-1, 4), to_xywh(b).reshape(-1, 4), [0] * len(b))
    both_empty = (box_area(a)[:, None] == 0) & (box_area(b)[None, :] == 0)
    np.testing.assert_allclose(ours[~both_empty.numpy()], np.asarray(ref)[~both_empty.numpy()], atol=1e-12)
    assert (ours[both_empty.numpy()] == 0).all()     # by design: 0/0 -> 0 (pycocotools gives 0/0 as well, unguarded)
