"""One pass over the videos that feeds every fidelity and privacy number.

Per clip, every frame goes through the mask (or comes from a user's pre-masked video)
and through each baseline; the original and every output are tracked (FaceTracker) and
fitted (FaceFitter), one tracker and fitter per stream so warm starts never mix
streams. The raw baseline is the original itself: its measures are the original's.

Privacy sampling, with `step` >= 2 so no frame is both probe and gallery:

    probe frames    i = 0, step, 2 step, ...        outputs of every kind
    gallery frames  i = step // 2 + k step          the original's
    Mask2Mask       within a clip: the probe frames of a clip's first half are the
                    gallery for those of its second half (same output kind); across
                    clips: one clip of a person (with every clip of the others) is
                    the gallery for another clip of the same person; and both again
                    with every clinical channel held constant (CONSTANT_SETTING)

Only probe frames whose original shows a face dlib can detect count in the attacks:
a frame without a face in the first place cannot be re-identified. Identification,
verification and detection take each person's first clip only (more clips of one
person would weight the attack toward that person). A clip's identity is
its file name up to the first "_" (p09_webcam and p09_face_then_cartoon are one person).
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from ..fit.fitter import FaceFitter, FitDiverged
from ..measure import MeasureSeries
from ..model.camera import Camera
from ..model.generic_face import GenericFace
from ..model.eyeball import EYEBALL_RADIUS_MM, IRIS_RADIUS_MM, PUPIL_RADIUS_MM
from ..model.params import AvatarParams, euler_angles
from ..track.eye_outline import EyeOutline
from ..track.landmarks import FaceLandmarks
from ..track.tracker import FaceTracker
from ..video.decode import VideoInputError, VideoReader
from . import avatar_pixels, clinical, fidelity, ocular, privacy
from .baselines import BASELINES

OUTPUTS = ("mask", "raw", "recoded", "eye_crop", "blur", "pixelate")
#: Streams that are tracked: the original and every output but raw (which is the original).
TRACKED = ("original", *(name for name in OUTPUTS if name != "raw"))
#: Rows of the clinical (primary) table: the mask by what it draws, by its pixels, and
#: re-tracked (readability); the original and the baselines as the tracker reads them.
CLINICAL = ("mask_drawn", "mask_pixels", "mask", "raw", "recoded", "eye_crop", "blur", "pixelate")
#: Outputs left out of the sample frames: they look like the original, shown first.
UNSAMPLED = ("raw", "recoded")
SAMPLE_HEIGHT = 128
SAMPLES_PER_CLIP = 3


class EvaluationInputError(ValueError):
    """Inputs the evaluation cannot use; the message is one line for the user."""


def identity_of(path: Path) -> str:
    """The person in a clip: its file stem up to the first underscore."""
    return path.stem.split("_", 1)[0]


class _Stream:
    """Tracker + fitter of one stream, and its per-frame times, landmarks, fits and ocular measures."""

    def __init__(self, face: GenericFace) -> None:
        self.tracker = FaceTracker()
        self.fitter = FaceFitter(face)
        self.times: list[float] = []
        self.landmarks: list[np.ndarray | None] = []
        self.fits: list[tuple[np.ndarray, np.ndarray, tuple[float, float, float]] | None] = []
        self.eyes: list[tuple[EyeOutline, EyeOutline] | None] = []
        self.measures = MeasureSeries(face)

    def add(self, rgb: np.ndarray, camera: Camera, time_s: float) -> FaceLandmarks | None:
        found = self.tracker.track(rgb)
        params = fit = None
        if found is not None:
            try:
                params = self.fitter.fit(found, camera)
                fit = (params.rotation, params.eyes, tuple(np.degrees(euler_angles(params.rotation))))
            except FitDiverged:
                params = None
                self.fitter.reset()
        else:
            self.fitter.reset()
        self.times.append(time_s)
        self.landmarks.append(None if found is None else found.points.astype(np.float64))
        self.eyes.append(None if found is None else found.eyes)
        self.fits.append(fit)
        self.measures.add(time_s, params)
        return found


@dataclass
class ClipRun:
    """What one clip leaves for the report."""

    path: Path
    identity: str
    width: int
    height: int
    series: dict[str, fidelity.Series]
    measures: dict[str, MeasureSeries]          # the ocular measures of the fits, per stream
    fit_rms_px: np.ndarray                      # (n,) the mask's fit residual, NaN without a face
    eyes: dict[str, clinical.EyeTrack]           # per stream as read for the clinical figures (CLINICAL)
    pixel_check: dict                           # the mask's pixels against its drawn outlines
    probe_frames: list[int]
    probes: dict[str, list[np.ndarray | None]]  # per output kind, at probe_frames
    originals: list[np.ndarray | None]          # the original at probe_frames
    gallery: list[np.ndarray | None]            # the original at the gallery frames
    samples: list[np.ndarray] = field(default_factory=list)  # rows: original | outputs
    constant: list[np.ndarray | None] = field(default_factory=list)  # CONSTANT_* frames at probe_frames


def _thumb(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (max(1, round(w * SAMPLE_HEIGHT / h)), SAMPLE_HEIGHT), interpolation=cv2.INTER_AREA)


def run_clip(path: Path, step: int, face: GenericFace, embedder: privacy.Embedder, masked: Path | None = None) -> ClipRun:
    """Mask (or read `masked`), build the baselines, track and fit everything, embed the sampled frames."""
    from ..pipeline import Masker

    with contextlib.ExitStack() as stack:
        reader = stack.enter_context(VideoReader(path))
        mask_frames = None
        if masked is not None:
            masked_reader = stack.enter_context(VideoReader(masked))
            if (masked_reader.width, masked_reader.height) != (reader.width, reader.height):
                raise EvaluationInputError(
                    f"{masked}: {masked_reader.width}x{masked_reader.height}, but {path} is {reader.width}x{reader.height}")
            mask_frames = iter(masked_reader)
        masker = None if masked is not None else stack.enter_context(Masker(face=face, report_drawn=True))
        camera = Camera.for_image(reader.width, reader.height)
        streams = {name: _Stream(face) for name in TRACKED}
        total = reader.frames or 0
        sample_at = {int(total * q) // step * step for q in (0.2, 0.5, 0.8)} if total else {0}
        fit_rms: list[float] = []
        drawn: list[tuple[EyeOutline, EyeOutline] | None] = []
        pixels: list[tuple[avatar_pixels.PixelEye, avatar_pixels.PixelEye] | None] = []
        run = ClipRun(path, identity_of(path), reader.width, reader.height, {}, {}, np.empty(0), {}, {}, [],
                      {name: [] for name in OUTPUTS}, [], [])
        for frame in reader:
            rgb = frame.rgb
            if (rgb.shape[1], rgb.shape[0]) != (reader.width, reader.height):
                raise VideoInputError(f"{path}: the frame size changes at frame {frame.index}")
            if masker is not None:
                result = masker.process(rgb)
                mask = result.image
                fit_rms.append(result.params["fit_rms_px"] if result.params else np.nan)
                drawn.append(result.drawn)
                pixels.append(None if result.drawn is None else avatar_pixels.read_frame(mask, result.drawn))
            else:
                mask = next(mask_frames, None)
                if mask is None:
                    raise EvaluationInputError(f"{masked}: ends at frame {frame.index}, before {path}")
                mask = mask.rgb
                fit_rms.append(np.nan)
            found = streams["original"].add(rgb, camera, frame.time)
            outputs = {"mask": mask, **{name: make(rgb, found) for name, make in BASELINES.items()}}
            for name in TRACKED[1:]:
                streams[name].add(outputs[name], camera, frame.time)
            i = frame.index
            if i % step == 0:
                run.probe_frames.append(i)
                original = embedder.embed(rgb)
                run.originals.append(original)
                for name in OUTPUTS:
                    # A frame whose original shows no face is no probe of any attack: not embedded.
                    run.probes[name].append(original if name == "raw" or original is None else embedder.embed(outputs[name]))
                if i in sample_at and len(run.samples) < SAMPLES_PER_CLIP:
                    run.samples.append(np.hstack([_thumb(rgb)] + [_thumb(outputs[n]) for n in OUTPUTS if n not in UNSAMPLED]))
            elif i % step == step // 2:
                run.gallery.append(embedder.embed(rgb))
        if mask_frames is not None and next(mask_frames, None) is not None:
            raise EvaluationInputError(f"{masked}: has more frames than {path}")
    run.series = {name: fidelity.Series.build(np.array(s.times), s.landmarks, s.fits) for name, s in streams.items()}
    run.series["raw"] = run.series["original"]
    run.measures = {name: s.measures for name, s in streams.items()}
    run.measures["raw"] = run.measures["original"]
    run.fit_rms_px = np.array(fit_rms, float)
    times = np.array(streams["original"].times)
    run.eyes = {name: clinical.EyeTrack.from_outlines(times, streams[name].eyes) for name in TRACKED}
    if masker is not None:
        run.eyes["mask_drawn"] = clinical.EyeTrack.from_outlines(times, drawn)
        run.eyes["mask_pixels"] = clinical.EyeTrack.build(times, [None if p is None else _pixel_frame(p, d)
                                                                  for p, d in zip(pixels, drawn)])
    run.pixel_check = pixel_check(pixels)
    return run


def _pixel_frame(eyes: tuple[avatar_pixels.PixelEye, avatar_pixels.PixelEye], drawn: tuple[EyeOutline, EyeOutline]) -> tuple:
    """(readings, outlines) of a frame as its pixels show it: the pixel iris (the drawn
    one where the lids hide the limbus) within the drawn corners, for the deviation."""
    outlines = tuple(EyeOutline(d.corners, d.upper, d.lower,
                                d.iris_centre if p.iris_centre is None else p.iris_centre,
                                d.iris_radius if p.iris_radius is None else p.iris_radius)
                     for p, d in zip(eyes, drawn))
    return (eyes[0].readings, eyes[1].readings), outlines


def pixel_check(pixels: list[tuple[avatar_pixels.PixelEye, avatar_pixels.PixelEye] | None]) -> dict:
    """Share of the frames with a drawn avatar whose pixels confirm both drawn eyes, and
    how often each check failed (per eye)."""
    checked = [p for p in pixels if p is not None]
    reasons: dict[str, int] = {}
    for frame in checked:
        for eye in frame:
            for reason in eye.reasons:
                reasons[reason] = reasons.get(reason, 0) + 1
    confirmed = sum(all(eye.confirmed for eye in frame) for frame in checked)
    errors = np.array([eye.errors_px for frame in checked for eye in frame]).reshape(-1, 3)
    return {"frames": len(checked), "confirmed": confirmed,
            "eyes_without_eyeball_pixel": sum(eye.eyeball_px == 0 for frame in checked for eye in frame),
            "share": confirmed / len(checked) if checked else None, "failed_checks_per_eye": reasons,
            "tolerance_px": avatar_pixels.TOLERANCE_PX, "residuals_px": pixel_check_residuals(errors), "errors": errors}


def pixel_check_residuals(errors: np.ndarray) -> dict:
    """Stats of the (k, 3) pixel-minus-drawn residuals (upper lid, lower lid, iris centre), px."""
    out = {}
    for k, name in enumerate(("upper_lid", "lower_lid", "iris_centre")):
        v = errors[:, k][np.isfinite(errors[:, k])]
        out[name] = {**fidelity.stats(v), "abs_p90": float(np.percentile(np.abs(v), 90)) if len(v) else None,
                     "within_1px": float(np.mean(np.abs(v) <= 1.0)) if len(v) else None}
    return out


def _default_masked(videos: list[Path], masked: list[Path] | None) -> list[Path | None]:
    if masked is None:
        return [None] * len(videos)
    if len(masked) != len(videos):
        raise EvaluationInputError(f"{len(masked)} masked videos for {len(videos)} videos: give one per video, in order")
    return list(masked)


def _readable(videos: list[Path], masked: list[Path | None]) -> tuple[list[tuple[Path, Path | None]], list[dict[str, str]]]:
    """The (video, masked) pairs that open, before any slow work, and a record of the videos that do not.

    One unreadable clip should not sink the others, so it is skipped; a pre-masked
    video that does not open or match its original's size is an error (its numbers
    would be wrong), and so is having no readable video at all.
    """
    usable, skipped = [], []
    for video, masked_video in zip(videos, masked):
        try:
            with VideoReader(video) as reader:
                size = reader.width, reader.height
        except VideoInputError as err:
            skipped.append({"item": str(video), "reason": str(err)})
            continue
        if masked_video is not None:
            try:
                with VideoReader(masked_video) as reader:
                    masked_size = reader.width, reader.height
            except VideoInputError as err:
                raise EvaluationInputError(str(err)) from None
            if masked_size != size:
                raise EvaluationInputError(f"{masked_video}: {masked_size[0]}x{masked_size[1]}, "
                                           f"but {video} is {size[0]}x{size[1]}")
        usable.append((video, masked_video))
    if not usable:
        raise EvaluationInputError("none of the videos could be read: " + "; ".join(s["reason"] for s in skipped))
    return usable, skipped


@dataclass
class Evaluation:
    """Every number (`results`, JSON-ready but for the per-frame arrays) and the runs behind the plots."""

    results: dict
    runs: list[ClipRun]


def evaluate(videos: list[Path], galleries: list[Path], step: int = 10, masked: list[Path] | None = None,
             log: TextIO = sys.stderr) -> Evaluation:
    """Every number of the report for `videos` against `galleries` (folders of NAME/*.jpg).

    A video that cannot be read is skipped and recorded; inputs that make the whole
    evaluation meaningless (no usable video, an unusable gallery, a pre-masked video
    that does not match its original) raise EvaluationInputError.
    """
    if step < 2:
        raise EvaluationInputError(f"--step must be at least 2 (probe and gallery frames must differ), not {step}")
    if not videos:
        raise EvaluationInputError("no videos to evaluate")
    if not galleries:
        raise EvaluationInputError("no gallery folder given")
    pairs, skipped = _readable(videos, _default_masked(videos, masked))
    embedder = privacy.Embedder()
    gallery = privacy.Gallery()
    for folder in galleries:
        try:
            gallery = gallery.merged(privacy.load_gallery(folder, embedder))
        except privacy.GalleryError as err:
            raise EvaluationInputError(str(err)) from None
    face = GenericFace.load()
    runs: list[ClipRun] = []
    for video, masked_video in pairs:
        print(f"eval: {video.name}", file=log)
        try:
            runs.append(run_clip(video, step, face, embedder, masked_video))
        except VideoInputError as err:  # e.g. a frame that does not decode mid-way
            print(f"eval: skipped: {err}", file=log)
            skipped.append({"item": str(video), "reason": str(err)})
    if not runs:
        raise EvaluationInputError("none of the videos could be read: " + "; ".join(s["reason"] for s in skipped))
    constant_probes(runs, face, embedder)
    results = {
        "settings": {"videos": [str(v) for v in videos], "galleries": [str(g) for g in galleries], "step": step,
                     "masked": [str(m) for m in masked] if masked else None, "attacker": privacy.ATTACKER},
        "clips": [{"video": str(r.path), "identity": r.identity, "width": r.width, "height": r.height,
                   "frames": len(r.series["original"].found), "frames_with_face": int(r.series["original"].found.sum()),
                   "probe_frames": len(r.probe_frames)} for r in runs],
        "skipped": skipped + gallery.skipped,
        "fidelity": fidelity_results(runs),
        "privacy": privacy_results(runs, gallery),
    }
    return Evaluation(results, runs)


def _clip_keys(runs: list[ClipRun]) -> list[str]:
    keys: list[str] = []
    for run in runs:
        key = run.path.name
        while key in keys:  # the same file name from two folders
            key += "'"
        keys.append(key)
    return keys


def fidelity_results(runs: list[ClipRun]) -> dict:
    """Per clip and pooled fidelity of every output kind (tracker and ocular measures), and the mask's fit residual."""
    keys = _clip_keys(runs)
    per_clip = {
        key: {name: fidelity.compare(run.series["original"], run.series[name], run.width) for name in OUTPUTS}
        for key, run in zip(keys, runs)
    }
    measures = {}
    for key, run in zip(keys, runs):
        readings = {name: ocular.read(series) for name, series in run.measures.items() if name != "raw"}
        readings["raw"] = readings["original"]  # the same series: read once
        measures[key] = {name: ocular.compare(readings["original"], readings[name]) for name in OUTPUTS}
    pooled = {name: fidelity.pooled([clip[name] for clip in per_clip.values()]) for name in OUTPUTS}
    residual = {key: fidelity.stats(run.fit_rms_px) for key, run in zip(per_clip, runs)}
    clin = {key: {name: clinical.compare(run.eyes["original"], run.eyes[name if name != "raw" else "original"])
                  for name in CLINICAL if name in run.eyes or name == "raw"} for key, run in zip(keys, runs)}
    checks = {key: {k: v for k, v in run.pixel_check.items() if k != "errors"} for key, run in zip(keys, runs)}
    frames = sum(c["frames"] for c in checks.values())
    confirmed = sum(c["confirmed"] for c in checks.values())
    errors = np.concatenate([run.pixel_check["errors"] for run in runs])
    return {"clinical": {"pooled": {name: clinical.pooled([c[name] for c in clin.values() if name in c]) for name in CLINICAL},
                         "per_clip": clin},
            "pixel_check": {"pooled": {"frames": frames, "confirmed": confirmed, "share": confirmed / frames if frames else None,
                                       "eyes_without_eyeball_pixel": sum(c["eyes_without_eyeball_pixel"] for c in checks.values()),
                                       "residuals_px": pixel_check_residuals(errors)},
                            "per_clip": checks},
            "pooled": pooled, "per_clip": per_clip,
            "ocular": {"pooled": {name: ocular.pooled([clip[name] for clip in measures.values()]) for name in OUTPUTS},
                       "per_clip": measures},
            "fit_rms_px": {"pooled": fidelity.stats(np.concatenate([r.fit_rms_px for r in runs])), "per_clip": residual}}


def _mask2mask(runs: list[ClipRun], probes_of: Callable[[ClipRun], list[np.ndarray | None]]) -> dict:
    """Mask2Mask within clips: each clip's probe frames of its first half are the gallery for those of its second half."""
    gallery, probes, truth = privacy.Gallery(), [], []
    for run in runs:
        half = len(run.series["original"].found) / 2
        for i, original, probe in zip(run.probe_frames, run.originals, probes_of(run)):
            if original is None:  # no face to re-identify in the first place
                continue
            if i < half:
                gallery.add(run.identity, probe)
            else:
                probes.append(probe)
                truth.append(run.identity)
    return privacy.identify(probes, truth, gallery, sorted({r.identity for r in runs}))


def _mask2mask_across(runs: list[ClipRun], probes_of: Callable[[ClipRun], list[np.ndarray | None]]) -> dict | None:
    """Mask2Mask across clips of one person: for each ordered pair (A, B) of different clips
    of the same identity, A's probe frames and every clip of the other identities are
    the gallery, B's probe frames the probes; pooled over the pairs. None when no
    identity has two clips."""
    def faces(run: ClipRun) -> list[np.ndarray | None]:
        return [p for p, o in zip(probes_of(run), run.originals) if o is not None]

    hits = 0.0
    probes = detected = pairs = 0
    chance = []
    for a in runs:
        for b in runs:
            if a is b or a.identity != b.identity:
                continue
            gallery = privacy.Gallery()
            for run in runs:
                if run is a or run.identity != a.identity:
                    for embedding in faces(run):
                        gallery.add(run.identity, embedding)
            probe = faces(b)
            result = privacy.identify(probe, [b.identity] * len(probe), gallery, gallery.identities)
            pairs += 1
            probes += result["probes"]
            detected += result["detected"]
            hits += (result["rank1"] or 0.0) * result["probes"]
            chance.append(result["chance"])
    if not pairs:
        return None
    return {"pairs": pairs, "probes": probes, "detected": detected, "rank1": hits / probes if probes else None,
            "chance": float(np.mean([c for c in chance if c is not None])) if any(c is not None for c in chance) else None}


def privacy_results(runs: list[ClipRun], gallery: privacy.Gallery) -> dict:
    """Identification, Mask2Mask (within and across clips), verification and detection for
    every output kind, and Mask2Mask with every clinical channel held constant."""
    attack_gallery = gallery.merged(privacy.Gallery())
    for run in runs:
        for embedding in run.gallery:
            attack_gallery.add(run.identity, embedding)
    # Identification, verification and detection take one clip per person (the first
    # given): another clip of the same person counts that person's frames again (p09's
    # three clips are one recording), which weights the attack toward them.
    firsts = [run for i, run in enumerate(runs) if run.identity not in {r.identity for r in runs[:i]}]
    out: dict = {}
    for name in OUTPUTS:
        probes, truth, originals = [], [], []
        for run in firsts:
            for original, probe in zip(run.originals, run.probes[name]):
                if original is None:  # no face to re-identify in the first place
                    continue
                probes.append(probe)
                truth.append(run.identity)
                originals.append(original)
        out[name] = {
            "identification": privacy.identify(probes, truth, attack_gallery, attack_gallery.identities),
            "mask2mask": _mask2mask(runs, lambda r, n=name: r.probes[n]),
            "mask2mask_across": _mask2mask_across(runs, lambda r, n=name: r.probes[n]),
            "verification": privacy.verify(probes, originals),
            "detection": privacy.detection(probes),
        }
    if all(len(run.constant) == len(run.probe_frames) for run in runs):
        out["constant_channels"] = {"mask2mask": _mask2mask(runs, lambda r: r.constant),
                                    "mask2mask_across": _mask2mask_across(runs, lambda r: r.constant),
                                    "setting": CONSTANT_SETTING}
    out["gallery"] = {"identities": len(attack_gallery.identities), "embeddings": len(attack_gallery.embeddings),
                      "reid_identities": len(gallery.identities)}
    return out


#: The control for Mask2Mask: every probe frame of every clip rendered from one fixed
#: parameter set (frontal head at 450 mm, neutral expression and lids, eyes straight
#: ahead) in one framing (512x512), so no clinical channel and no framing differs.
CONSTANT_SIZE = (512, 512)
CONSTANT_DISTANCE_MM = 450.0
CONSTANT_SETTING = "one fixed parameter set (frontal, neutral, eyes ahead, 450 mm), 512x512, for every probe frame"


def constant_probes(runs: list[ClipRun], face: GenericFace, embedder: privacy.Embedder) -> None:
    """Fill each run's `constant`: the fixed frame rendered anew for each probe frame and
    embedded (identical renders are embedded once: the embedding is a function of the pixels)."""
    from ..pipeline import avatar_pose
    from ..render.renderer import AvatarRenderer

    camera = Camera.for_image(*CONSTANT_SIZE)
    params = AvatarParams(np.eye(3), np.array([0.0, 0.0, CONSTANT_DISTANCE_MM]), np.zeros(face.n_expression),
                          np.zeros(8), np.zeros((2, 2)))
    cache: dict[bytes, np.ndarray | None] = {}
    with AvatarRenderer(*CONSTANT_SIZE, face.topology(), eyeball_radius=EYEBALL_RADIUS_MM,
                        iris_radius=IRIS_RADIUS_MM, pupil_radius=PUPIL_RADIUS_MM) as renderer:
        for run in runs:
            run.constant = []
            for _ in run.probe_frames:
                image = renderer.render(camera, *avatar_pose(face, params))
                key = image.tobytes()
                if key not in cache:
                    cache[key] = embedder.embed(image)
                run.constant.append(cache[key])
