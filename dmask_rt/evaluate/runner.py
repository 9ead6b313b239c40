"""One pass over the videos that feeds every fidelity and privacy number.

Per clip, every frame goes through the mask (or comes from a user's pre-masked video)
and through each baseline; the original and every output are tracked (FaceTracker) and
fitted (FaceFitter), one tracker and fitter per stream so warm starts never mix
streams. The raw baseline is the original itself: its measures are the original's.

Privacy sampling, with `step` >= 2 so no frame is both probe and gallery:

    probe frames    i = 0, step, 2 step, ...        outputs of every kind
    gallery frames  i = step // 2 + k step          the original's
    Mask2Mask       the probe frames of a clip's first half are the gallery for
                    those of its second half (same output kind)

Only probe frames whose original shows a face dlib can detect count in the attacks:
a frame without a face in the first place cannot be re-identified. A clip's identity is
its file name up to the first "_" (p09_webcam and p09_face_then_cartoon are one person).
"""
from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from ..fit.fitter import FaceFitter, FitDiverged
from ..measure import MeasureSeries
from ..model.camera import Camera
from ..model.generic_face import GenericFace
from ..model.params import euler_angles
from ..track.landmarks import FaceLandmarks
from ..track.tracker import FaceTracker
from ..video.decode import VideoInputError, VideoReader
from . import fidelity, ocular, privacy
from .baselines import BASELINES

OUTPUTS = ("mask", "raw", "recoded", "eye_crop", "blur", "pixelate")
#: Streams that are tracked: the original and every output but raw (which is the original).
TRACKED = ("original", *(name for name in OUTPUTS if name != "raw"))
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
    probe_frames: list[int]
    probes: dict[str, list[np.ndarray | None]]  # per output kind, at probe_frames
    originals: list[np.ndarray | None]          # the original at probe_frames
    gallery: list[np.ndarray | None]            # the original at the gallery frames
    samples: list[np.ndarray] = field(default_factory=list)  # rows: original | outputs


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
        masker = None if masked is not None else stack.enter_context(Masker(face=face))
        camera = Camera.for_image(reader.width, reader.height)
        streams = {name: _Stream(face) for name in TRACKED}
        total = reader.frames or 0
        sample_at = {int(total * q) // step * step for q in (0.2, 0.5, 0.8)} if total else {0}
        fit_rms: list[float] = []
        run = ClipRun(path, identity_of(path), reader.width, reader.height, {}, {}, np.empty(0), [],
                      {name: [] for name in OUTPUTS}, [], [])
        for frame in reader:
            rgb = frame.rgb
            if (rgb.shape[1], rgb.shape[0]) != (reader.width, reader.height):
                raise VideoInputError(f"{path}: the frame size changes at frame {frame.index}")
            if masker is not None:
                result = masker.process(rgb)
                mask = result.image
                fit_rms.append(result.params["fit_rms_px"] if result.params else np.nan)
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
                    run.probes[name].append(original if name == "raw" else embedder.embed(outputs[name]))
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
    return run


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
    return {"pooled": pooled, "per_clip": per_clip,
            "ocular": {"pooled": {name: ocular.pooled([clip[name] for clip in measures.values()]) for name in OUTPUTS},
                       "per_clip": measures},
            "fit_rms_px": {"pooled": fidelity.stats(np.concatenate([r.fit_rms_px for r in runs])), "per_clip": residual}}


def privacy_results(runs: list[ClipRun], gallery: privacy.Gallery) -> dict:
    """Identification, Mask2Mask, verification and detection for every output kind."""
    attack_gallery = gallery.merged(privacy.Gallery())
    for run in runs:
        for embedding in run.gallery:
            attack_gallery.add(run.identity, embedding)
    out: dict = {}
    for name in OUTPUTS:
        probes, truth, originals, m2m_gallery, m2m_probes, m2m_truth = [], [], [], privacy.Gallery(), [], []
        for run in runs:
            half = len(run.series["original"].found) / 2
            for i, original, probe in zip(run.probe_frames, run.originals, run.probes[name]):
                if original is None:  # no face to re-identify in the first place
                    continue
                probes.append(probe)
                truth.append(run.identity)
                originals.append(original)
                if i < half:
                    m2m_gallery.add(run.identity, probe)
                else:
                    m2m_probes.append(probe)
                    m2m_truth.append(run.identity)
        out[name] = {
            "identification": privacy.identify(probes, truth, attack_gallery, attack_gallery.identities),
            "mask2mask": privacy.identify(m2m_probes, m2m_truth, m2m_gallery, sorted(set(truth))),
            "verification": privacy.verify(probes, originals),
            "detection": privacy.detection(probes),
        }
    out["gallery"] = {"identities": len(attack_gallery.identities), "embeddings": len(attack_gallery.embeddings),
                      "reid_identities": len(gallery.identities)}
    return out
