"""Hand-labelled real eyes (tests/data/eye_labels.json) and any method's error against them.

Issue 11 needs ground truth at the extremes the trackers regress (shut eyes drawn as a
slit, retracted lids drawn as normal ones, irises deep in a corner). The label file
holds frames of ../shared/data/videos (clip name and frame index only, never pixels)
with, per eye ("r" = the subject's right = image left, "l"), the outline a person drew
on a magnified crop (see label_tool.py for how):

    corners   [[x, y] lateral, [x, y] medial], source-frame pixels, pixel centres at
              integers (the tracker's convention)
    upper     >= 3 points on the upper lid margin strictly between the corners
    lower     >= 3 points on the lower lid margin
    iris      {"centre": [x, y], "radius": r}: the limbus circle, or null (no iris visible)
    shut      true when the lids meet and no eyeball shows
    class     wide-open | normal | narrowed | half-shut | shut

beside the outline it started from ("proposal": today's tracker) and which label
points moved more than 0.5 px from it ("corrected": corners by index, lid points by
their distance to the proposal's lid polyline, the iris centre and radius).

Evaluation: per labelled eye, a method's `EyeOutline` (None: no face found) gives
    MRD1, MRD2 error  |read_eye(method) - read_eye(label)|, iris diameters (label open with an iris)
    lid error         mean |h_method(s) - h_label(s)| over the opening, both lids, in the
                      label's corner frame, / the label's iris diameter (for an eye with no
                      visible iris: the median labelled diameter of that clip's same eye)
    iris error        |p_method - p_label| / the label's fissure width (label with an iris)
    open/shut         read_eye(method).shut == label shut (a missed face counts as wrong)
summarised per class, per tag and overall by median, mean and n (`evaluate`,
`markdown_table`). Plugging a method in is one line: `collect(labels, tracker_method)`,
`collect(labels, refined(tracker_method, EyeRefiner))`, or stored outlines of a model
dmask does not run (`stored_method(load_attention_outlines())`, `per_clip=True`).

Labelling conventions (every point checked by eye on the magnified crop; the proposal is
only a start):
- Lid margin: the boundary of the visible eyeball (sclera, iris, caruncle, the tear strip)
  against everything of the lid (skin, the lid's margin strip, lashes hanging over the
  globe): the upper margin where clean sclera or iris starts below the lash band (the
  middle of the transition); across a dark iris under dark lashes, the smooth lid curve
  continued from the sclera on both sides. The lower margin where the pink lid margin begins.
- Corners: where the two margins meet; lateral: the tip of the visible sclera wedge;
  medial: the tip of the caruncle (with the iris deep in that corner, of the dark
  triangle). Where lash tails hide a corner (p04 looking down or shut), it is placed from
  the same eye's corner-to-iris offsets in a frontal frame of the clip.
- Limbus: a least-squares circle through >= 3 points read on the visible limbus; a turned
  iris (an ellipse) takes the radius of the same eye in a frontal frame of the clip and the
  centre at the pupil (or midway between the horizontal extremes); a half-covered iris is
  fitted to its side arcs and extends under the lids.
- Shut: the lids meet along the whole fissure and no sclera or iris shows (both lids on the
  line where they meet, iris null). Any eyeball visible: half-shut (upper lid at or below
  the pupil) or narrowed. Wide-open: sclera visible between a lid and the iris.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..track.eye_outline import EyeOutline, eye_frame, margin_profile, read_eye

LABELS_PATH = Path(__file__).resolve().parents[2] / "tests" / "data" / "eye_labels.json"
VIDEOS = Path(__file__).resolve().parents[3] / "shared" / "data" / "videos"
ATTENTION_PATH = LABELS_PATH.with_name("attention_mesh_eyes.json")
CLASSES = ("wide-open", "normal", "narrowed", "half-shut", "shut")
TAGS = ("extreme-gaze", "glasses", "low-res")
EYES = ("r", "l")
#: A label point counts as corrected when it is this far (px) from the proposal.
CORRECTED_PX = 0.5
#: Samples across the opening for the lid error.
_LID_SAMPLES = 41


# --- one eye's label ---------------------------------------------------------------------

@dataclass(frozen=True)
class EyeLabel:
    """One hand-labelled eye (module docstring), source-frame pixels."""

    corners: np.ndarray
    upper: np.ndarray
    lower: np.ndarray
    iris_centre: np.ndarray | None
    iris_radius: float | None
    shut: bool
    cls: str

    def to_dict(self) -> dict:
        iris = None if self.iris_centre is None else {
            "centre": np.round(self.iris_centre, 2).tolist(), "radius": round(float(self.iris_radius), 2)}
        return {"corners": np.round(self.corners, 2).tolist(), "upper": np.round(self.upper, 2).tolist(),
                "lower": np.round(self.lower, 2).tolist(), "iris": iris, "shut": bool(self.shut), "class": self.cls}

    @classmethod
    def from_dict(cls, d: dict) -> "EyeLabel":
        iris = d.get("iris")
        return cls(np.asarray(d["corners"], float).reshape(2, 2), np.asarray(d["upper"], float).reshape(-1, 2),
                   np.asarray(d["lower"], float).reshape(-1, 2),
                   None if iris is None else np.asarray(iris["centre"], float).reshape(2),
                   None if iris is None else float(iris["radius"]), bool(d["shut"]), str(d["class"]))

    @classmethod
    def from_outline(cls, outline: EyeOutline, shut: bool, cls_name: str, iris: bool = True) -> "EyeLabel":
        return cls(np.asarray(outline.corners, float), np.asarray(outline.upper, float),
                   np.asarray(outline.lower, float), np.asarray(outline.iris_centre, float) if iris else None,
                   float(outline.iris_radius) if iris else None, shut, cls_name)

    def to_outline(self) -> EyeOutline:
        """The label as an `EyeOutline`; with no iris the centre and radius are NaN, so only
        its opening and shut readings mean anything."""
        centre = np.full(2, np.nan) if self.iris_centre is None else self.iris_centre
        return EyeOutline(self.corners, self.upper, self.lower, centre,
                          math.nan if self.iris_radius is None else self.iris_radius)

    def problems(self) -> list[str]:
        """What makes this label unusable (empty when it is well-formed)."""
        out = []
        if self.corners.shape != (2, 2) or not np.isfinite(self.corners).all():
            out.append("corners must be two finite points")
        if self.cls not in CLASSES:
            out.append(f"class {self.cls!r} not one of {CLASSES}")
        origin, a, _, width = eye_frame(self.corners)
        for lid in ("upper", "lower"):
            pts = getattr(self, lid)
            if len(pts) < 3 or not np.isfinite(pts).all():
                out.append(f"{lid}: needs >= 3 finite points")
                continue
            s = (pts - origin) @ a
            if s.min() <= 0 or s.max() >= width:
                out.append(f"{lid}: points must lie strictly between the corners")
        if self.iris_centre is not None and not (np.isfinite(self.iris_centre).all() and self.iris_radius > 0):
            out.append("iris needs a finite centre and a positive radius")
        if self.cls == "shut" and not self.shut:
            out.append("class shut but shut is false")
        return out


def corrections(label: EyeLabel, proposal: EyeOutline) -> dict:
    """Which label points lie more than CORRECTED_PX from the proposal: corners by index,
    lid points by their distance to the proposal's corner-margin-corner polyline (a point
    slid along a right curve is not a correction), the iris centre and radius."""
    out = {"corners": [bool(np.hypot(*(label.corners[i] - proposal.corners[i])) > CORRECTED_PX) for i in range(2)]}
    for lid in ("upper", "lower"):
        chain = np.concatenate([proposal.corners[:1], _sorted_along(proposal, lid), proposal.corners[1:]])
        out[lid] = [bool(_polyline_distance(p, chain) > CORRECTED_PX) for p in getattr(label, lid)]
    if label.iris_centre is None:
        out["iris_centre"] = out["iris_radius"] = True  # the proposal always has an iris
    else:
        out["iris_centre"] = bool(np.hypot(*(label.iris_centre - proposal.iris_centre)) > CORRECTED_PX)
        out["iris_radius"] = bool(abs(label.iris_radius - proposal.iris_radius) > CORRECTED_PX)
    return out


def _sorted_along(outline: EyeOutline, lid: str) -> np.ndarray:
    pts = np.asarray(getattr(outline, lid), float)
    d = np.asarray(outline.corners[1], float) - np.asarray(outline.corners[0], float)
    return pts[np.argsort(pts @ d)]


def _polyline_distance(p: np.ndarray, chain: np.ndarray) -> float:
    a, b = chain[:-1], chain[1:]
    ab = b - a
    t = np.clip(np.einsum("ij,ij->i", p - a, ab) / np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-12), 0, 1)
    return float(np.min(np.hypot(*(a + t[:, None] * ab - p).T)))


def resample(outline: EyeOutline, fractions: tuple[float, ...] = (1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6)) -> EyeOutline:
    """The same outline with each lid given by points of its polyline at `fractions` of
    the corner axis (the starting label: a few points where a curve is read off best)."""
    origin, a, n, width = eye_frame(outline.corners)
    lids = []
    for lid in ("upper", "lower"):
        chain = np.concatenate([outline.corners[:1], getattr(outline, lid), outline.corners[1:]]) - origin
        s, h = chain @ a, chain @ n
        order = np.argsort(s, kind="stable")
        q = np.asarray(fractions) * width
        hq = np.interp(q, s[order], h[order])
        lids.append(origin + q[:, None] * a + hq[:, None] * n)
    return EyeOutline(np.asarray(outline.corners, float), lids[0], lids[1],
                      np.asarray(outline.iris_centre, float), float(outline.iris_radius))


# --- the label file ----------------------------------------------------------------------

def frame_key(clip: str, frame: int) -> str:
    return f"{clip}#{frame}"


def load(path: Path = LABELS_PATH) -> dict:
    with open(path) as f:
        return json.load(f)


def labelled_eyes(doc: dict) -> Iterator[tuple[dict, str, EyeLabel]]:
    """(frame entry, eye, label) of every labelled eye, in file order."""
    for entry in doc["frames"]:
        for eye in EYES:
            d = entry["eyes"][eye].get("label")
            if d is not None:
                yield entry, eye, EyeLabel.from_dict(d)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # The lock file lives outside the repo, keyed by the label file's absolute path.
    key = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"dmask_eye_labels_{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def update(path: Path, fn: Callable[[dict], None]) -> dict:
    """Read-modify-write of the label file under an exclusive lock, replaced atomically:
    `fn` edits the document in place (callers touch only their own frame's entry), so
    labellers working on other frames at the same time lose nothing."""
    with _locked(path):
        doc = load(path) if path.exists() else {"frames": []}
        fn(doc)
        text = dumps(doc)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".eye_labels.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    return doc


def find_frame(doc: dict, clip: str, frame: int) -> dict:
    for entry in doc["frames"]:
        if entry["clip"] == clip and entry["frame"] == frame:
            return entry
    raise KeyError(f"{clip} frame {frame} is not in the label file")


def dumps(doc: dict) -> str:
    """The label file's text: one frame per block and one field per line, so concurrent
    edits of different frames merge and a label reads (and hand-edits) easily."""
    def compact(v: object) -> str:
        return json.dumps(v, separators=(", ", ": "))

    lines = ["{"]
    for k, v in doc.items():
        if k != "frames":
            lines.append(f" {json.dumps(k)}: {compact(v)},")
    lines.append(' "frames": [')
    for i, entry in enumerate(doc["frames"]):
        head = ", ".join(f"{json.dumps(k)}: {compact(v)}" for k, v in entry.items() if k != "eyes")
        lines.append(f"  {{{head}, \"eyes\": {{")
        for j, eye in enumerate(EYES):
            lines.append(f"   {json.dumps(eye)}: {{")
            fields = list(entry["eyes"][eye].items())
            for m, (k, v) in enumerate(fields):
                lines.append(f"    {json.dumps(k)}: {compact(v)}" + ("," if m < len(fields) - 1 else ""))
            lines.append("   }" + ("," if j == 0 else ""))
        lines.append("  }}" + ("," if i < len(doc["frames"]) - 1 else ""))
    lines += [" ]", "}", ""]
    return "\n".join(lines)


# --- methods -----------------------------------------------------------------------------

#: A method on one clip: RGB frame -> (right, left) outlines, or None (no face).
FrameMethod = Callable[[np.ndarray], "tuple[EyeOutline, EyeOutline] | None"]
#: A fresh method state per clip (trackers carry state from frame to frame).
MethodFactory = Callable[[], FrameMethod]
#: A method's outline per (clip, frame, eye); None where it found no face.
Outlines = dict[tuple[str, int, str], "EyeOutline | None"]


class Refiner(Protocol):
    """An outline refiner as the tracker runs it (`track/eye_refine.EyeRefiner`): both eyes
    of a frame, with state carried from frame to frame of one stream."""

    def refine_pair(self, rgb: np.ndarray, right: EyeOutline, left: EyeOutline) -> tuple[EyeOutline, EyeOutline]: ...


def tracker_method() -> FrameMethod:
    """Today's tracker (method "tracker"): FaceTracker's landmarks read by `tracked_outlines`."""
    from ..track.eye_outline import tracked_outlines
    from ..track.tracker import FaceTracker

    tracker = FaceTracker(refine_eyes=False)

    def run(rgb: np.ndarray) -> tuple[EyeOutline, EyeOutline] | None:
        landmarks = tracker.track(rgb)
        return None if landmarks is None else tracked_outlines(landmarks)
    return run


def refined(factory: MethodFactory, refiner: Callable[[], Refiner]) -> MethodFactory:
    """`factory`'s outlines passed through a fresh `refiner()` per clip (e.g. "tracker+refine")."""
    def make() -> FrameMethod:
        base, stream = factory(), refiner()

        def run(rgb: np.ndarray) -> tuple[EyeOutline, EyeOutline] | None:
            out = base(rgb)
            return None if out is None else stream.refine_pair(rgb, *out)
        return run
    return make


def stored_method(outlines: "Outlines") -> Callable[[str], FrameMethod]:
    """A method that replays stored outlines (e.g. the attention mesh's) frame by frame:
    `collect` calls it per clip; frames without a stored outline have none."""
    def for_clip(clip: str) -> FrameMethod:
        index = iter(range(1 << 30))

        def run(rgb: np.ndarray) -> tuple[EyeOutline, EyeOutline] | None:
            i = next(index)
            pair = (outlines.get((clip, i, "r")), outlines.get((clip, i, "l")))
            return None if pair[0] is None or pair[1] is None else pair  # type: ignore[return-value]
        return run
    return for_clip


def load_attention_outlines(path: Path = ATTENTION_PATH) -> "Outlines":
    """The attention face mesh's outlines at the labelled frames, as stored by
    `attention_mesh_dump.py --eyes-json` (it needs MediaPipe's runtime, which dmask does
    not install): corners and lids from its eye-opening contour, the limbus from its
    five iris points (radius: mean distance of the four boundary points), as
    `tracked_outlines` reads today's tracker."""
    doc = json.loads(Path(path).read_text())
    out: Outlines = {}
    for f in doc["frames"]:
        for eye in EYES:
            if f["eyes"] is None:
                out[(f["clip"], f["frame"], eye)] = None
                continue
            c = np.array(f["eyes"][eye]["contour"], float)
            iris = np.array(f["eyes"][eye]["iris"], float)
            radius = float(np.linalg.norm(iris[1:] - iris[0], axis=1).mean())
            out[(f["clip"], f["frame"], eye)] = EyeOutline(c[[0, 8]], c[9:16], c[1:8], iris[0], radius)
    return out


def clip_frames(clip: str, videos: Path = VIDEOS) -> Iterator[tuple[int, np.ndarray]]:
    """(index, RGB) of every frame of a clip, decoded as the product decodes it."""
    from ..video.decode import VideoReader

    with VideoReader(videos / clip) as reader:
        for frame in reader:
            yield frame.index, frame.rgb


def collect(doc: dict, factory: Callable, videos: Path = VIDEOS, per_clip: bool = False) -> Outlines:
    """Run a method through each labelled clip from its first frame, sequentially as the
    product does, keeping its outlines at the frames in the label file. `factory()` makes
    a fresh method per clip (`factory(clip)` when `per_clip`, as `stored_method` needs)."""
    wanted: dict[str, set[int]] = {}
    for entry in doc["frames"]:
        wanted.setdefault(entry["clip"], set()).add(entry["frame"])
    out: Outlines = {}
    for clip, frames in wanted.items():
        run, last = factory(clip) if per_clip else factory(), max(frames)
        for index, rgb in clip_frames(clip, videos):
            result = run(rgb)
            if index in frames:
                for e, eye in enumerate(EYES):
                    out[(clip, index, eye)] = None if result is None else result[e]
            if index >= last:
                break
    return out


# --- errors and their summary ------------------------------------------------------------

def lid_error_px(method: EyeOutline, label: EyeLabel) -> float:
    """Mean |h_method(s) - h_label(s)| over the label's opening, both lids, in pixels."""
    truth = label.to_outline()
    origin, a, n, width = eye_frame(truth.corners)
    s = np.linspace(0.0, width, _LID_SAMPLES)
    err = []
    for lid in ("upper", "lower"):
        h_m = np.interp(s, *margin_profile(method, lid, (origin, a, n)))
        h_l = np.interp(s, *margin_profile(truth, lid, (origin, a, n)))
        err.append(np.abs(h_m - h_l))
    return float(np.mean(err))


def reference_diameters(doc: dict) -> dict[tuple[str, str], float]:
    """Median labelled iris diameter per (clip, eye): the unit for eyes with no visible iris."""
    sizes: dict[tuple[str, str], list[float]] = {}
    for entry, eye, label in labelled_eyes(doc):
        if label.iris_radius is not None:
            sizes.setdefault((entry["clip"], eye), []).append(2 * label.iris_radius)
    return {k: float(np.median(v)) for k, v in sizes.items()}


@dataclass(frozen=True)
class EyeError:
    """One eye's errors (NaN where not defined); `found` False when the method had no face."""

    clip: str
    frame: int
    eye: str
    cls: str
    tags: tuple[str, ...]
    found: bool
    mrd1: float
    mrd2: float
    lid: float
    iris: float
    shut_ok: bool


def eye_error(method: EyeOutline | None, label: EyeLabel, diameter: float) -> tuple[float, float, float, float, bool]:
    """(MRD1, MRD2, lid, iris centre errors, shut correct) of one method outline; `diameter`
    is the unit for the lid error when the label has no iris."""
    if method is None:
        return math.nan, math.nan, math.nan, math.nan, False
    got = read_eye(method)
    truth = label.to_outline()
    width = eye_frame(truth.corners)[3]
    nan = math.nan
    mrd1 = mrd2 = iris = nan
    if label.iris_centre is not None:
        iris = float(np.hypot(*(np.asarray(method.iris_centre, float) - label.iris_centre))) / width
        if not label.shut:
            want = read_eye(truth)
            mrd1, mrd2 = abs(got.mrd1 - want.mrd1), abs(got.mrd2 - want.mrd2)
        diameter = 2 * label.iris_radius
    return mrd1, mrd2, lid_error_px(method, label) / diameter, iris, got.shut == label.shut


def errors(doc: dict, outlines: Outlines) -> list[EyeError]:
    """Every labelled eye's errors for one method's outlines (a missing key is a bug: every
    labelled frame must have been run)."""
    refs = reference_diameters(doc)
    out = []
    for entry, eye, label in labelled_eyes(doc):
        clip, frame = entry["clip"], entry["frame"]
        width = eye_frame(label.corners)[3]
        diameter = refs.get((clip, eye), 0.4 * width)  # no open eye labelled yet: a typical iris/fissure
        values = eye_error(outlines[(clip, frame, eye)], label, diameter)
        out.append(EyeError(clip, frame, eye, label.cls, tuple(entry.get("tags", ())),
                            outlines[(clip, frame, eye)] is not None, *values))
    return out


@dataclass(frozen=True)
class Summary:
    """One group of eyes: n, medians and means of each error, open/shut accuracy, missed faces."""

    n: int
    n_iris: int
    mrd1: tuple[float, float]
    mrd2: tuple[float, float]
    lid: tuple[float, float]
    iris: tuple[float, float]
    shut_acc: float
    missed: int


def summarise(rows: list[EyeError]) -> Summary:
    def stat(name: str) -> tuple[float, float]:
        v = np.array([getattr(r, name) for r in rows], float)
        v = v[np.isfinite(v)]
        return (float(np.median(v)), float(np.mean(v))) if len(v) else (math.nan, math.nan)

    return Summary(len(rows), int(sum(np.isfinite(r.iris) for r in rows)), stat("mrd1"), stat("mrd2"), stat("lid"),
                   stat("iris"), float(np.mean([r.shut_ok for r in rows])) if rows else math.nan,
                   int(sum(not r.found for r in rows)))


def evaluate(doc: dict, outlines: Outlines) -> dict[str, Summary]:
    """Summaries overall, per class and per tag (groups with no eyes are left out)."""
    rows = errors(doc, outlines)
    groups = {"all": rows}
    groups.update({c: [r for r in rows if r.cls == c] for c in CLASSES})
    groups.update({t: [r for r in rows if t in r.tags] for t in TAGS})
    return {k: summarise(v) for k, v in groups.items() if v}


def markdown_table(results: dict[str, dict[str, Summary]]) -> str:
    """Methods' summaries as one markdown table (median / mean per error)."""
    def mm(v: tuple[float, float], digits: int = 3) -> str:
        return "-" if math.isnan(v[0]) else f"{v[0]:.{digits}f} / {v[1]:.{digits}f}"

    lines = ["| method | group | n eyes (iris) | MRD1 err, iris diam. | MRD2 err, iris diam. "
             "| lid err, iris diam. | iris centre err, fissure | open/shut acc. | missed |",
             "|---|---|---|---|---|---|---|---|---|"]
    for method, groups in results.items():
        for group, s in groups.items():
            lines.append(f"| {method} | {group} | {s.n} ({s.n_iris}) | {mm(s.mrd1)} | {mm(s.mrd2)} | {mm(s.lid)} "
                         f"| {mm(s.iris)} | {s.shut_acc:.3f} | {s.missed} |")
    return "\n".join(lines) + "\n\nerrors as median / mean over the group's eyes\n"


def correction_share(doc: dict) -> tuple[int, int]:
    """(points corrected, points) over all labelled eyes: corners, lid points, iris centre and radius."""
    moved = total = 0
    for entry in doc["frames"]:
        for eye in EYES:
            c = entry["eyes"][eye].get("corrected")
            if entry["eyes"][eye].get("label") is None or c is None:
                continue
            flags = [*c["corners"], *c["upper"], *c["lower"], c["iris_centre"], c["iris_radius"]]
            moved += sum(flags)
            total += len(flags)
    return moved, total
