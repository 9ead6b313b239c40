"""The eye labelling tool: pick frames, show magnified eye crops, write labels, evaluate.

Labels live in tests/data/eye_labels.json (format: eye_labels.py); images only ever go
to $DMASK_LABEL_CROPS (default: dmask-labels in the temp dir; raw face pixels never
enter the repo). Coordinates are
source-frame pixels with pixel centres at integers (the tracker's convention).

    python -m dmask_rt.evaluate.label_tool select            # choose the frames (tracker candidates)
    python -m dmask_rt.evaluate.label_tool list [--todo]     # frames, their classes/tags, labelled or not
    python -m dmask_rt.evaluate.label_tool show p01 40 r     # crops of the eye (r, l or both if omitted)
    python -m dmask_rt.evaluate.label_tool set p01 40 r --corners "x,y x,y" --upper "x,y x,y x,y ..." \\
        --lower "..." --limbus "x,y x,y x,y ..." --class normal [--iris "cx,cy,r" | --iris none] [--shut]
    python -m dmask_rt.evaluate.label_tool check p01 40      # both eyes' labels drawn, for checking
    python -m dmask_rt.evaluate.label_tool status            # counts and the share of points corrected
    python -m dmask_rt.evaluate.label_tool eval [--methods ...] [--json FILE] [--consensus SECOND]
    python -m dmask_rt.evaluate.label_tool agree SECOND      # a second, blind labelling against this one

How to (re)label one eye:
 1. `show CLIP FRAME EYE` writes <clip>_<frame>_<eye>_grid.png (magnified crop, a thin grid
    line at every integer source coordinate, stronger lines with coordinates every 5, the
    current label, or the tracker's proposal when there is none, drawn thin and numbered:
    c0 lateral corner, c1 medial corner, u1.. upper lid, l1.. lower lid, the iris circle)
    and <clip>_<frame>_<eye>_clean.png (the same crop with nothing drawn on it, ticks on
    the border only). It prints the points it drew.
 2. Look at both (the clean one to see edges, the grid one to read coordinates to ~0.25 px)
    and write the corrected points with `set` (only the options given change; the first
    `set` of an eye starts from the proposal and needs --class). `--limbus` takes >= 3
    points read off the visible limbus arcs and fits the circle to them.
 3. `show` again (it now draws the label) and repeat until every point sits right; then
    `check CLIP FRAME` to see both eyes together.
`set` rewrites only that frame's entry, under a file lock, so several people can label
different frames at once. Hand edits of the JSON are fine while nobody else is writing.
Conventions (what the margin is, the limbus on a turned iris, when an eye is shut): the
module docstring of eye_labels.py. `eval` scores today's tracker, it with the refinement,
and the attention face mesh (stored outlines) with and without it, per class.

A second labelling (tests/data/eye_labels_second.json) is made blind: copy the label
file, clear every "label" (keep the proposals), and label with `--labels COPY` without
looking at the first. `agree` reads it against the first (the floor below which a
method's error cannot be measured) and `eval --consensus` scores against the mean of
the two (label_agreement.py).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from ..track.eye_outline import EyeOutline, read_eye
from . import eye_labels as el
from . import label_agreement

#: Where the crops go (outside the repo): $DMASK_LABEL_CROPS, else a folder in the temp dir.
SCRATCH = Path(os.environ.get("DMASK_LABEL_CROPS", Path(tempfile.gettempdir()) / "dmask-labels"))
_CLIPS = ("p01_gaze_left_right.mp4", "p02_gaze_wink.mp4", "p03_glasses_blinks.mp4", "p04_eye_closure_look_down.mp4",
          "p05_studio_mouth.mp4", "p06_talking_blinks.mp4", "p07_talking.mp4", "p08_low_res_256.mp4",
          "p09_webcam.mp4")  # p09's other clips repeat p09_webcam's session
#: Frames per selection category (issue 11 part 3); "normal" takes what is left to 84+.
QUOTAS = {"shut": 15, "half-shut": 10, "narrowed": 10, "wide-open": 10, "extreme-gaze": 15,
          "glasses": 10, "low-res": 10, "normal": 12}
#: Minimum frame distance between two frames of one category in one clip (no near-duplicates).
SPREAD = 6
# Tracker opening (fissure widths) bounds of the candidate classes: the tracker reads shut
# eyes at ~0.1 and regresses extremes toward normal, so these only find candidates.
_OPENING_CLASSES = ((0.12, "shut"), (0.2, "half-shut"), (0.27, "narrowed"), (math.inf, "normal"))


def _clip(doc_or_none: dict | None, name: str) -> str:
    """A clip's file name from a prefix such as "p01"."""
    names = sorted({e["clip"] for e in doc_or_none["frames"]}) if doc_or_none else list(_CLIPS)
    hits = [c for c in names if c == name or c.startswith(name)]
    if len(hits) != 1:
        raise SystemExit(f"clip {name!r} matches {hits or 'nothing'}")
    return hits[0]


def read_frame(clip: str, index: int) -> np.ndarray:
    for i, rgb in el.clip_frames(clip):
        if i == index:
            return rgb
    raise SystemExit(f"{clip} has no frame {index}")


# --- selection ---------------------------------------------------------------------------

def _candidate(outline: EyeOutline) -> str:
    opening = read_eye(outline).opening
    return next(c for bound, c in _OPENING_CLASSES if opening < bound)


def track_clips() -> dict[str, list[tuple[EyeOutline, EyeOutline] | None]]:
    """Today's tracker through every clip with a face, frame by frame."""
    out = {}
    for clip in _CLIPS:
        run = el.tracker_method()
        out[clip] = [run(rgb) for _, rgb in el.clip_frames(clip)]
        print(f"tracked {clip}: {len(out[clip])} frames", file=sys.stderr)
    return out


def _scores(clip: str, outs: tuple[EyeOutline, EyeOutline]) -> dict[str, float]:
    """How well a frame serves each category (higher is better; absent = not a candidate)."""
    r = [read_eye(o) for o in outs]
    opening = [x.opening for x in r]
    sc: dict[str, float] = {}
    lo = min(opening)
    if lo < 0.15:
        sc["shut"] = -lo
    if 0.12 <= lo < 0.2:
        sc["half-shut"] = -abs(lo - 0.16)
    if 0.2 <= lo < 0.27:
        sc["narrowed"] = -abs(lo - 0.235)
    if clip[:3] == "p02" or max(x.mrd1 for x in r) > 0.45:
        sc["wide-open"] = max(x.mrd1 for x in r) + max(opening)
    if min(opening) > 0.2:
        sc["extreme-gaze"] = max(abs(x.place_h - 0.5) for x in r)
    if clip[:3] == "p03":
        sc["glasses"] = 0.0
    if clip[:3] == "p08":
        sc["low-res"] = 0.0
    if min(opening) >= 0.27 and clip[:3] not in ("p03", "p08"):
        sc["normal"] = -max(abs(x.place_h - 0.5) for x in r)
    return sc


def choose(tracked: dict[str, list]) -> list[tuple[str, int, str]]:
    """(clip, frame, category): per category and clip the best-scoring frames at least
    SPREAD apart, then taken round-robin over the clips (so every clip that shows a case
    contributes) until the quota; no frame twice, none within 3 frames of another pick.
    Wide-open and extreme gaze take the most extreme frames wherever they are (few clips
    show them, and the extremes are the point).
    Glasses, low-res and normal frames rank by distance to evenly spread targets instead."""
    cands: dict[str, dict[str, list[tuple[float, int]]]] = {c: {} for c in QUOTAS}
    for clip, outs in tracked.items():
        for i, o in enumerate(outs):
            if o is not None:
                for cat, s in _scores(clip, o).items():
                    cands[cat].setdefault(clip, []).append((s, i))
    chosen: list[tuple[str, int, str]] = []
    taken: set[tuple[str, int]] = set()
    for cat, quota in QUOTAS.items():
        queues = {clip: _ranked(pool, quota, cat in ("glasses", "low-res", "normal")) for clip, pool in cands[cat].items()}
        if cat in ("wide-open", "extreme-gaze"):
            queues = {"": [(c, i) for _, c, i in sorted(((s, c, i) for c, p in cands[cat].items() for s, i in p),
                                                          reverse=True)]}
        picked: list[tuple[str, int]] = []
        while len(picked) < quota and any(queues.values()):
            for clip in sorted(queues):
                while queues[clip] and len(picked) < quota:
                    item = queues[clip].pop(0)
                    clip_i, i = item if isinstance(item, tuple) else (clip, item)
                    if not any(c == clip_i and abs(j - i) < SPREAD for c, j in picked) and not any(
                            c == clip_i and abs(j - i) < 3 for c, j in taken):
                        picked.append((clip_i, i))
                        taken.add((clip_i, i))
                        break
        chosen += [(c, i, cat) for c, i in picked]
    return chosen


def _ranked(pool: list[tuple[float, int]], quota: int, even: bool) -> list[int]:
    """A clip's candidate frames, best first: by score, or (`even`) nearest to `quota`
    targets spread evenly over the candidates' span, then the rest by position."""
    if not even:
        return [i for _, i in sorted(pool, reverse=True)]
    frames = sorted(i for _, i in pool)
    targets = np.linspace(frames[0], frames[-1], quota + 2)[1:-1]
    first = [min(frames, key=lambda i: abs(i - t)) for t in targets]
    return first + [i for i in frames if i not in first]


def cmd_select(args: argparse.Namespace) -> None:
    tracked = track_clips()
    chosen = choose(tracked)
    path = Path(args.labels)
    sizes = {clip: next(el.clip_frames(clip))[1].shape[1::-1] for clip in tracked}

    def merge(doc: dict) -> None:
        old = {el.frame_key(e["clip"], e["frame"]): e for e in doc["frames"]}
        frames = []
        for clip, i, cat in sorted(chosen, key=lambda t: (t[0], t[1])):
            key = el.frame_key(clip, i)
            if key in old:  # keep whatever is already labelled
                frames.append(old.pop(key))
                continue
            outs = tracked[clip][i]
            tags = [t for t, ok in (("extreme-gaze", cat == "extreme-gaze"), ("glasses", clip.startswith("p03")),
                                    ("low-res", clip.startswith("p08"))) if ok]
            frames.append({"clip": clip, "frame": i, "size": list(map(int, sizes[clip])), "selected_as": cat,
                           "tags": tags, "eyes": {eye: {"candidate": _candidate(o), "proposal": o.to_dict(),
                                                        "label": None, "corrected": None}
                                                  for eye, o in zip(el.EYES, outs)}})
        frames += [e for e in old.values() if any(e["eyes"][k]["label"] for k in el.EYES)]
        doc["frames"] = sorted(frames, key=lambda e: (e["clip"], e["frame"]))
        doc["about"] = "hand-labelled eyes for issue 11; format and evaluation: dmask_rt/evaluate/eye_labels.py"
    doc = el.update(path, merge)
    _print_counts(doc)


def _print_counts(doc: dict) -> None:
    by_sel: dict[str, int] = {}
    by_tag: dict[str, int] = {}
    by_cand: dict[str, int] = {}
    for e in doc["frames"]:
        by_sel[e["selected_as"]] = by_sel.get(e["selected_as"], 0) + 1
        for t in e["tags"]:
            by_tag[t] = by_tag.get(t, 0) + 1
        for eye in el.EYES:
            c = e["eyes"][eye]["label"]["class"] if e["eyes"][eye]["label"] else e["eyes"][eye]["candidate"]
            by_cand[c] = by_cand.get(c, 0) + 1
    print(f"{len(doc['frames'])} frames; selected as {by_sel}; tags {by_tag}; eyes by class "
          f"(label, else tracker candidate) {by_cand}")


# --- drawing -----------------------------------------------------------------------------

def _box(corners: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Integer source box (x0, y0, x1, y1) around an eye, with margin for lids and brow."""
    c = corners.mean(axis=0)
    w = max(float(np.hypot(*(corners[1] - corners[0]))), 8.0)
    x0, x1 = math.floor(c[0] - 0.7 * w), math.ceil(c[0] + 0.7 * w)
    y0, y1 = math.floor(c[1] - 0.42 * w), math.ceil(c[1] + 0.4 * w)
    return max(x0, 0), max(y0, 0), min(x1, shape[1] - 1), min(y1, shape[0] - 1)


def magnify(rgb: np.ndarray, box: tuple[int, int, int, int], scale: int) -> np.ndarray:
    """Lanczos magnification of `box`: output pixel (u, v) shows source (x0 + u/scale, y0 + v/scale)."""
    x0, y0, x1, y1 = box
    m = np.array([[1 / scale, 0, x0], [0, 1 / scale, y0]], np.float64)
    size = ((x1 - x0) * scale + 1, (y1 - y0) * scale + 1)
    return cv2.warpAffine(rgb, m, size, flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)


_PAD = 34  # border for the coordinate numbers


def _canvas(big: np.ndarray) -> np.ndarray:
    h, w = big.shape[:2]
    out = np.full((h + 2 * _PAD, w + 2 * _PAD, 3), 255, np.uint8)
    out[_PAD:_PAD + h, _PAD:_PAD + w] = big
    return out


def _text(img: np.ndarray, s: str, xy: tuple[int, int], colour: tuple[int, int, int], size: float = 0.38) -> None:
    cv2.putText(img, s, xy, cv2.FONT_HERSHEY_SIMPLEX, size, (255, 255, 255), 3, cv2.LINE_AA)
    cv2.putText(img, s, xy, cv2.FONT_HERSHEY_SIMPLEX, size, colour, 1, cv2.LINE_AA)


def _ticks(img: np.ndarray, box: tuple[int, int, int, int], scale: int, grid: bool) -> None:
    """Coordinates on the border (every 5 px numbered); with `grid` also lines across the crop."""
    x0, y0, x1, y1 = box
    h, w = (y1 - y0) * scale + 1, (x1 - x0) * scale + 1
    inner = img[_PAD:_PAD + h, _PAD:_PAD + w]
    if grid:
        fine, strong = inner.copy(), inner.copy()
        for x in range(x0, x1 + 1):
            u = (x - x0) * scale
            cv2.line(strong if x % 5 == 0 else fine, (u, 0), (u, h - 1), (255, 255, 0) if x % 5 == 0 else (0, 0, 0), 1)
        for y in range(y0, y1 + 1):
            v = (y - y0) * scale
            cv2.line(strong if y % 5 == 0 else fine, (0, v), (w - 1, v), (255, 255, 0) if y % 5 == 0 else (0, 0, 0), 1)
        blended = inner.astype(np.float32)
        for layer, alpha in ((fine, 0.18), (strong, 0.45)):
            diff = np.any(layer != inner, axis=2)
            blended[diff] = (1 - alpha) * blended[diff] + alpha * layer[diff]
        inner[:] = blended.round().astype(np.uint8)
    for x in range(x0, x1 + 1):
        u = _PAD + (x - x0) * scale
        n = 9 if x % 5 == 0 else 3
        for y_edge, d in ((_PAD - 1, -1), (_PAD + h, 1)):
            cv2.line(img, (u, y_edge), (u, y_edge + d * n), (0, 0, 0), 1)
        if x % 5 == 0:
            _text(img, str(x), (u - 10, 12), (0, 0, 0), 0.35)
            _text(img, str(x), (u - 10, img.shape[0] - 4), (0, 0, 0), 0.35)
    for y in range(y0, y1 + 1):
        v = _PAD + (y - y0) * scale
        n = 9 if y % 5 == 0 else 3
        for x_edge, d in ((_PAD - 1, -1), (_PAD + w, 1)):
            cv2.line(img, (x_edge, v), (x_edge + d * n, v), (0, 0, 0), 1)
        if y % 5 == 0:
            _text(img, str(y), (1, v + 4), (0, 0, 0), 0.3)
            _text(img, str(y), (img.shape[1] - _PAD + 4, v + 4), (0, 0, 0), 0.3)


def _to_px(p: np.ndarray, box: tuple[int, int, int, int], scale: int) -> tuple[int, int]:
    return int(round(_PAD + (p[0] - box[0]) * scale)), int(round(_PAD + (p[1] - box[1]) * scale))


def draw_outline(img: np.ndarray, label: el.EyeLabel, box: tuple[int, int, int, int], scale: int,
                 numbers: bool = True) -> None:
    """The outline thin: lids as polylines through the points, the limbus circle, numbered points."""
    colours = {"upper": (0, 200, 0), "lower": (0, 120, 255)}
    for lid, colour in colours.items():
        pts = el._sorted_along(label.to_outline(), lid)
        chain = np.concatenate([label.corners[:1], pts, label.corners[1:]])
        if np.hypot(*(chain[0] - chain[1])) > np.hypot(*(chain[-1] - chain[1])):
            chain = chain[::-1]
        cv2.polylines(img, [np.array([_to_px(p, box, scale) for p in chain], np.int32)], False, colour, 1, cv2.LINE_AA)
        for k, p in enumerate(getattr(label, lid)):
            u, v = _to_px(p, box, scale)
            cv2.drawMarker(img, (u, v), colour, cv2.MARKER_CROSS, 7, 1)
            if numbers:
                _text(img, f"{lid[0]}{k + 1}", (u - 6, v - 8 if lid == "upper" else v + 16), colour)
    for k, p in enumerate(label.corners):
        u, v = _to_px(p, box, scale)
        cv2.drawMarker(img, (u, v), (255, 0, 0), cv2.MARKER_TILTED_CROSS, 9, 1)
        if numbers:
            _text(img, f"c{k}", (u + 5, v - 6), (255, 0, 0))
    if label.iris_centre is not None:
        u, v = _to_px(label.iris_centre, box, scale)
        cv2.circle(img, (u, v), int(round(label.iris_radius * scale)), (255, 0, 255), 1, cv2.LINE_AA)
        cv2.drawMarker(img, (u, v), (255, 0, 255), cv2.MARKER_CROSS, 9, 1)


def _current(entry: dict, eye: str) -> tuple[el.EyeLabel, str]:
    """The eye's label, else the starting label made from the proposal."""
    d = entry["eyes"][eye]
    if d["label"] is not None:
        return el.EyeLabel.from_dict(d["label"]), "label"
    start = el.resample(EyeOutline.from_dict(d["proposal"]))
    return el.EyeLabel.from_outline(start, False, d["candidate"]), "proposal"


def _describe(label: el.EyeLabel) -> str:
    f = lambda a: " ".join(f"{x:.2f},{y:.2f}" for x, y in a)  # noqa: E731
    iris = "none" if label.iris_centre is None else f"{label.iris_centre[0]:.2f},{label.iris_centre[1]:.2f},{label.iris_radius:.2f}"
    return (f'--corners "{f(label.corners)}" --upper "{f(label.upper)}" --lower "{f(label.lower)}" '
            f'--iris "{iris}" --class {label.cls}{" --shut" if label.shut else ""}')


def cmd_show(args: argparse.Namespace) -> None:
    doc = el.load(Path(args.labels))
    clip = _clip(doc, args.clip)
    entry = el.find_frame(doc, clip, args.frame)
    rgb = read_frame(clip, args.frame)
    SCRATCH.mkdir(parents=True, exist_ok=True)
    for eye in args.eyes or el.EYES:
        if eye not in el.EYES:
            raise SystemExit(f"eye must be one of {el.EYES}")
        label, what = _current(entry, eye)
        box = _box(label.corners, rgb.shape)
        if args.box:
            box = tuple(int(v) for v in args.box.split(","))
        scale = args.scale or int(np.clip(round(900 / max(box[2] - box[0], 1)), 6, 28))
        big = magnify(rgb, box, scale)
        stem = SCRATCH / f"{Path(clip).stem[:3]}_{args.frame:04d}_{eye}"
        clean = _canvas(big)
        _ticks(clean, box, scale, grid=False)
        cv2.imwrite(f"{stem}_clean.png", clean[:, :, ::-1])
        grid = _canvas(big)
        _ticks(grid, box, scale, grid=True)
        draw_outline(grid, label, box, scale)
        cv2.imwrite(f"{stem}_grid.png", grid[:, :, ::-1])
        r = read_eye(label.to_outline())
        print(f"{stem}_grid.png / _clean.png  x{scale} box {box}  drawn: {what}  "
              f"(opening {r.opening:.3f} MRD1 {r.mrd1:.3f} MRD2 {r.mrd2:.3f})")
        print(f"  {_describe(label)}")


def cmd_check(args: argparse.Namespace) -> None:
    """Both eyes of a frame with their labels (or proposals) drawn, moderate magnification."""
    doc = el.load(Path(args.labels))
    clip = _clip(doc, args.clip)
    entry = el.find_frame(doc, clip, args.frame)
    rgb = read_frame(clip, args.frame)
    labels = [_current(entry, eye)[0] for eye in el.EYES]
    corners = np.concatenate([lb.corners for lb in labels])
    x0, y0 = np.floor(corners.min(axis=0) - 12).astype(int)
    x1, y1 = np.ceil(corners.max(axis=0) + 12).astype(int)
    pad_y = int((x1 - x0) * 0.18)
    box = (max(x0, 0), max(y0 - pad_y, 0), min(x1, rgb.shape[1] - 1), min(y1 + pad_y, rgb.shape[0] - 1))
    scale = int(np.clip(round(1000 / (box[2] - box[0])), 2, 12))
    img = _canvas(magnify(rgb, box, scale))
    _ticks(img, box, scale, grid=False)
    for lb in labels:
        draw_outline(img, lb, box, scale, numbers=False)
    SCRATCH.mkdir(parents=True, exist_ok=True)
    out = SCRATCH / f"{Path(clip).stem[:3]}_{args.frame:04d}_check.png"
    cv2.imwrite(str(out), img[:, :, ::-1])
    print(out)


# --- writing a label ---------------------------------------------------------------------

def _points(text: str) -> np.ndarray:
    return np.array([[float(v) for v in p.split(",")] for p in text.split()], float).reshape(-1, 2)


def fit_circle(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares (Kasa) circle through >= 3 points on the limbus."""
    if len(points) < 3:
        raise SystemExit("--limbus needs at least 3 points")
    a = np.column_stack([2 * points, np.ones(len(points))])
    b = (points ** 2).sum(axis=1)
    (cx, cy, c), *_ = np.linalg.lstsq(a, b, rcond=None)
    return np.array([cx, cy]), float(math.sqrt(c + cx * cx + cy * cy))


def cmd_set(args: argparse.Namespace) -> None:
    path = Path(args.labels)
    clip = _clip(el.load(path), args.clip)
    report: list[str] = []

    def edit(doc: dict) -> None:
        entry = el.find_frame(doc, clip, args.frame)
        d = entry["eyes"][args.eye]
        if d["label"] is None and not args.cls:
            raise SystemExit("the first `set` of an eye needs --class")
        cur, _ = _current(entry, args.eye)
        corners = _points(args.corners) if args.corners else cur.corners
        upper = _points(args.upper) if args.upper else cur.upper
        lower = _points(args.lower) if args.lower else cur.lower
        centre, radius = cur.iris_centre, cur.iris_radius
        if args.limbus:
            pts = _points(args.limbus)
            centre, radius = fit_circle(pts)
            res = np.hypot(*(pts - centre).T) - radius
            report.append(f"limbus fit: centre {centre.round(2).tolist()} radius {radius:.2f}, "
                          f"residuals {np.round(res, 2).tolist()}")
        if args.iris == "none":
            centre = radius = None
        elif args.iris:
            cx, cy, r = (float(v) for v in args.iris.split(","))
            centre, radius = np.array([cx, cy]), r
        shut = cur.shut if args.shut is None else args.shut
        label = el.EyeLabel(corners, upper, lower, centre, radius, shut, args.cls or cur.cls)
        problems = label.problems()
        if problems:
            raise SystemExit("not written: " + "; ".join(problems))
        d["label"] = label.to_dict()
        d["corrected"] = el.corrections(label, EyeOutline.from_dict(d["proposal"]))
        if args.tags is not None:
            entry["tags"] = [t for t in args.tags.split(",") if t]
            bad = set(entry["tags"]) - set(el.TAGS)
            if bad:
                raise SystemExit(f"unknown tags {sorted(bad)}")
        r = read_eye(label.to_outline())
        report.append(f"written {clip} {args.frame} {args.eye}: class {label.cls} shut {label.shut} "
                      f"opening {r.opening:.3f} MRD1 {r.mrd1:.3f} MRD2 {r.mrd2:.3f}")
    el.update(path, edit)
    print("\n".join(report))


# --- overview and evaluation -------------------------------------------------------------

EVAL_METHODS = ("tracker", "tracker+refine", "attention mesh", "attention mesh+refine")


def cmd_list(args: argparse.Namespace) -> None:
    doc = el.load(Path(args.labels))
    for e in doc["frames"]:
        states = [e["eyes"][k]["label"]["class"] if e["eyes"][k]["label"] else f"({e['eyes'][k]['candidate']})"
                  for k in el.EYES]
        if args.todo and all(e["eyes"][k]["label"] for k in el.EYES):
            continue
        print(f"{e['clip'][:3]} {e['frame']:4d}  {e['selected_as']:<12} r {states[0]:<12} l {states[1]:<12} "
              f"{','.join(e['tags'])}")


def cmd_status(args: argparse.Namespace) -> None:
    doc = el.load(Path(args.labels))
    _print_counts(doc)
    done = sum(all(e["eyes"][k]["label"] for k in el.EYES) for e in doc["frames"])
    eyes = sum(1 for _ in el.labelled_eyes(doc))
    moved, total = el.correction_share(doc)
    print(f"labelled: {done} frames (both eyes), {eyes} eyes; points corrected {moved}/{total}"
          f" = {moved / max(total, 1):.1%}")
    bad = [(e["clip"], e["frame"], k, p) for e, k, lb in el.labelled_eyes(doc) for p in lb.problems()]
    for b in bad:
        print("problem:", *b)


def cmd_eval(args: argparse.Namespace) -> None:
    from ..track.eye_refine import EyeRefiner

    doc = el.load(Path(args.labels))
    if args.consensus:
        doc, disputed = label_agreement.consensus(doc, el.load(Path(args.consensus)))
        print(f"against the consensus of {args.labels} and {args.consensus}: "
              f"{sum(1 for _ in el.labelled_eyes(doc))} eyes labelled in both, {disputed} left out (shut or iris disputed)\n")
    labelled = {(e["clip"], e["frame"]) for e, _, _ in el.labelled_eyes(doc)}
    doc = {**doc, "frames": [e for e in doc["frames"] if (e["clip"], e["frame"]) in labelled]}
    attention = el.stored_method(el.load_attention_outlines(Path(args.attention)))
    methods = {
        "tracker": (el.tracker_method, False),
        "tracker+refine": (el.refined(el.tracker_method, EyeRefiner), False),
        "attention mesh": (attention, True),
        "attention mesh+refine": (lambda clip: el.refined(lambda: attention(clip), EyeRefiner)(), True),
    }
    results = {name: el.evaluate(doc, el.collect(doc, factory, per_clip=per_clip))
               for name, (factory, per_clip) in methods.items() if name in args.methods}
    print(el.markdown_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps({m: {g: s.__dict__ for g, s in r.items()} for m, r in results.items()},
                                              indent=1))


def cmd_agree(args: argparse.Namespace) -> None:
    first, second = el.load(Path(args.labels)), el.load(Path(args.second))
    print(f"{args.second} read against {args.labels} (eyes labelled in both):\n")
    print(el.markdown_table({"second labelling": label_agreement.agreement(first, second)}))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="label_tool", description=__doc__.split("\n")[0])
    p.add_argument("--labels", default=str(el.LABELS_PATH))
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("select").set_defaults(fn=cmd_select)
    s = sub.add_parser("list")
    s.add_argument("--todo", action="store_true")
    s.set_defaults(fn=cmd_list)
    s = sub.add_parser("show")
    s.add_argument("clip")
    s.add_argument("frame", type=int)
    s.add_argument("eyes", nargs="*", help="r and/or l (default both)")
    s.add_argument("--scale", type=int)
    s.add_argument("--box", help="x0,y0,x1,y1 source box instead of the automatic one")
    s.set_defaults(fn=cmd_show)
    s = sub.add_parser("check")
    s.add_argument("clip")
    s.add_argument("frame", type=int)
    s.set_defaults(fn=cmd_check)
    s = sub.add_parser("set")
    s.add_argument("clip")
    s.add_argument("frame", type=int)
    s.add_argument("eye", choices=el.EYES)
    s.add_argument("--corners", help='"x,y x,y": lateral then medial')
    s.add_argument("--upper", help='">= 3 points x,y on the upper lid margin"')
    s.add_argument("--lower", help='">= 3 points x,y on the lower lid margin"')
    s.add_argument("--limbus", help='">= 3 points x,y on the visible limbus": the circle is fitted to them')
    s.add_argument("--iris", help='"cx,cy,r" or none')
    s.add_argument("--class", dest="cls", choices=el.CLASSES)
    s.add_argument("--shut", dest="shut", action="store_true", default=None)
    s.add_argument("--open", dest="shut", action="store_false")
    s.add_argument("--tags", help="comma-separated frame tags (replace the frame's tags)")
    s.set_defaults(fn=cmd_set)
    sub.add_parser("status").set_defaults(fn=cmd_status)
    s = sub.add_parser("eval")
    s.add_argument("--methods", nargs="+", default=list(EVAL_METHODS), choices=EVAL_METHODS)
    s.add_argument("--attention", default=str(el.ATTENTION_PATH),
                   help="the attention mesh's stored outlines (attention_mesh_dump.py --eyes-json)")
    s.add_argument("--json", help="also write the summaries here")
    s.add_argument("--consensus", metavar="SECOND",
                   help="score against the consensus of the labels and this second labelling (label_agreement.py)")
    s.set_defaults(fn=cmd_eval)
    s = sub.add_parser("agree")
    s.add_argument("second", help="a second, blind labelling of the same frames")
    s.set_defaults(fn=cmd_agree)
    args = p.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    main()
