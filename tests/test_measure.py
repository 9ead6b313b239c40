"""Ocular measurements from the fitted model: known answers through the real fitter, and real clips.

Synthetic sequences are made as in test_fit.py: landmarks projected from known
parameters plus pixel noise, fitted frame by frame by FaceFitter (warm-started, so the
sequence's order matters). Real clips (../shared/data/videos) run once per module
through the Masker, as `dmask measure` runs them (tracker, fit and eye transfer); their
thresholds come from the values measured on them, noted next to each.
"""
from __future__ import annotations

import json
import math

import av
import numpy as np
import pytest
from conftest import DATA

from dmask_rt import assets
from dmask_rt.fit.fitter import FaceFitter
from dmask_rt.fit.gauss_newton import rodrigues
from dmask_rt.measure import (
    MEASURE_NAMES, MeasureSeries, eyelid_measures, format_summary, frame_measures, nystagmus_windows,
)
from dmask_rt.measure.alignment import camera_fixation_angles
from dmask_rt.measure.blinks import CLOSE_BELOW
from dmask_rt.measure.nystagmus import analyse_window, head_covariates
from dmask_rt.model.camera import Camera
from dmask_rt.model.generic_face import GenericFace
from dmask_rt.model.params import AvatarParams, param_names
from dmask_rt.model.projection import project_landmarks
from dmask_rt.track.landmarks import NUM_POINTS, FaceLandmarks

CAMERA = Camera.for_image(640, 480)
FPS = 30.0
NOISE_PX = 0.3


@pytest.fixture(scope="module")
def face() -> GenericFace:
    return GenericFace.load()


def base_params(face: GenericFace) -> AvatarParams:
    """A patient 50 cm from a webcam, head turned a little, eyes straight ahead, lids at rest."""
    return AvatarParams(
        rotation=rodrigues(np.radians([5.0, -8.0, 2.0])),
        translation=np.array([10.0, -5.0, 500.0]),
        expression=np.zeros(face.n_expression),
        lids=np.zeros(8),
        eyes=np.zeros((2, 2)),
    )


def fit_sequence(face: GenericFace, truths: list[AvatarParams], seed: int = 0) -> MeasureSeries:
    """Project each frame's truth, add NOISE_PX Gaussian noise, fit in order, measure at FPS."""
    fitter = FaceFitter(face)
    rng = np.random.default_rng(seed)
    series = MeasureSeries(face)
    for i, truth in enumerate(truths):
        points = project_landmarks(face, truth, CAMERA) + rng.normal(scale=NOISE_PX, size=(NUM_POINTS, 2))
        landmarks = FaceLandmarks(
            points.astype(np.float32), np.zeros(NUM_POINTS, np.float32), 0.99, False, np.zeros((2, 71, 2), np.float32)
        )
        series.add(i / FPS, fitter.fit(landmarks, CAMERA))
    return series


def truth_series(face: GenericFace, truths: list[AvatarParams]) -> MeasureSeries:
    series = MeasureSeries(face)
    for i, truth in enumerate(truths):
        series.add(i / FPS, truth)
    return series


# --- per-frame geometry, no fit ----------------------------------------------------------

def test_template_measures(face: GenericFace) -> None:
    p = base_params(face)
    rest = eyelid_measures(face, p)
    # The generic face at rest (measured: MRD1 3.48, MRD2 4.43, width 24.5 mm): within
    # adult ranges, loosely, so that a rebuilt template still passes.
    assert 2.0 < rest["mrd1_r_mm"] < 6.0 and 3.0 < rest["mrd2_r_mm"] < 7.0
    assert 20.0 < rest["fissure_width_r_mm"] < 35.0
    assert rest["mrd1_l_mm"] == pytest.approx(rest["mrd1_r_mm"])  # the template is symmetric
    assert rest["openness_r"] == pytest.approx(1.0) and rest["openness_l"] == pytest.approx(1.0)
    assert rest["fissure_height_r_mm"] == pytest.approx(rest["mrd1_r_mm"] + rest["mrd2_r_mm"])
    assert rest["mrd1_r_iris"] == pytest.approx(rest["mrd1_r_mm"] / 11.7)
    assert eyelid_measures(face, p, iris_diameter_mm=12.0)["mrd1_r_iris"] == pytest.approx(rest["mrd1_r_mm"] / 12.0)

    # Pure closure c of a lid moves it by c of the opening: openness = 1 - c. Not exactly:
    # the lid vertices also slide a little sideways as they close, so the margin under the
    # pupil is interpolated between slightly different points (measured: 0.704 for 0.7).
    p.lids[0] = 0.3   # right upper closure
    p.lids[6] = 0.2   # left lower closure (raised)
    m = eyelid_measures(face, p)
    assert m["openness_r"] == pytest.approx(0.7, abs=0.01) and m["openness_l"] == pytest.approx(0.8, abs=0.01)
    assert m["mrd1_r_mm"] == pytest.approx(rest["mrd1_r_mm"] - 0.3 * rest["fissure_height_r_mm"], abs=0.05)
    assert m["mrd2_l_mm"] == pytest.approx(rest["mrd2_l_mm"] - 0.2 * rest["fissure_height_l_mm"], abs=0.05)
    assert frame_measures(face, p)["mrd1_asymmetry_mm"] == pytest.approx(m["mrd1_r_mm"] - m["mrd1_l_mm"])

    # Looking up raises the pupil centre toward the upper lid: MRD1 falls by rho sin(phi).
    p.lids[:] = 0.0
    p.eyes[:, 1] = math.radians(10.0)
    up = eyelid_measures(face, p)
    assert up["mrd1_r_mm"] == pytest.approx(rest["mrd1_r_mm"] - 10.45 * math.sin(math.radians(10.0)), abs=0.05)
    assert up["eye_r_vertical_deg"] == pytest.approx(10.0)


def test_alignment_signs_and_prism_dioptres(face: GenericFace) -> None:
    p = base_params(face)
    p.eyes[0, 0] = math.radians(10.0)  # right eye toward the image right = toward the nose
    m = frame_measures(face, p)
    assert m["difference_horizontal_deg"] == pytest.approx(10.0)  # > 0: converging (eso direction)
    assert m["difference_horizontal_pd"] == pytest.approx(100 * math.tan(math.radians(10.0)))  # 17.6 PD
    assert m["gaze_horizontal_deg"] == pytest.approx(5.0)
    # The deviation is what remains beyond the convergence that looking into the camera needs.
    assert m["deviation_horizontal_deg"] == pytest.approx(10.0 - m["vergence_deg"])
    assert m["deviation_r_horizontal_deg"] == pytest.approx(-m["deviation_l_horizontal_deg"])
    assert m["deviation_r_horizontal_deg"] - m["deviation_l_horizontal_deg"] == pytest.approx(m["deviation_horizontal_deg"])
    # The log's measure columns never clash with the parameter columns they are merged with.
    assert set(m) == set(MEASURE_NAMES) and not set(MEASURE_NAMES) & set(param_names(face.n_expression))


def test_vergence_of_a_frontal_face_at_known_distance(face: GenericFace) -> None:
    p = base_params(face)
    p.rotation, p.translation = np.eye(3), np.array([0.0, 0.0, 500.0])
    centre = face.eye_centres[0]
    # The camera sits 500 mm in front of the head frame's origin: each eye turns inward by
    # atan(half the eye distance / that eye's distance from the camera).
    expected = 2 * math.degrees(math.atan(abs(centre[0]) / (500.0 + centre[2])))
    m = frame_measures(face, p)
    assert m["vergence_deg"] == pytest.approx(expected) and 6.0 < expected < 8.0  # about 7 degrees at 50 cm
    # Eyes looking straight into the camera: no deviation on either axis.
    p.eyes = np.radians(camera_fixation_angles(face, p))
    m = frame_measures(face, p)
    assert m["deviation_horizontal_deg"] == pytest.approx(0.0, abs=1e-9)
    assert m["deviation_vertical_deg"] == pytest.approx(0.0, abs=1e-9)
    assert m["difference_horizontal_deg"] == pytest.approx(expected)


# --- known answers through the real fitter ----------------------------------------------

def test_nystagmus_3hz_2deg_horizontal(face: GenericFace) -> None:
    base = base_params(face)
    truths = []
    for i in range(90):  # 3 s at 30 fps
        p = base.copy()
        p.eyes[:, 0] = math.radians(2.0) * math.sin(2 * math.pi * 3.0 * i / FPS)
        truths.append(p)
    summary = fit_sequence(face, truths).summary()["nystagmus"]
    for signal in ("r", "l", "both"):
        v = summary[signal]
        assert v["verdict"] == "horizontal", (signal, v)
        assert v["frequency_hz"] == pytest.approx(3.0, abs=0.2), (signal, v)
        assert v["amplitude_horizontal_deg"] == pytest.approx(2.0, abs=0.4), (signal, v)


def test_still_eyes_have_no_nystagmus(face: GenericFace) -> None:
    series = fit_sequence(face, [base_params(face)] * 90)
    for signal, v in series.summary()["nystagmus"].items():
        assert v["verdict"] == "none", (signal, v)
    # Not only the sustained verdict: no single window is significant (the criterion's
    # false-alarm rate is under 1% per window, and these are 6 windows).
    assert not any(w.detected for ws in series.nystagmus().values() for w in ws)


def test_squint_10deg_between_the_eyes(face: GenericFace) -> None:
    p = base_params(face)
    p.eyes = np.radians(camera_fixation_angles(face, p))  # both eyes on the camera...
    p.eyes[0, 0] += math.radians(10.0)                    # ...but the right one 10 degrees inward
    series = fit_sequence(face, [p] * 90)
    # After the fit has learned the face's shape (30 frames), the mean over 60 frames.
    assert np.mean(series.column("deviation_horizontal_deg")[30:]) == pytest.approx(10.0, abs=1.0)
    assert np.mean(series.column("deviation_vertical_deg")[30:]) == pytest.approx(0.0, abs=1.0)


@pytest.mark.parametrize("closures", [(0.3, -0.15, 0.1, 0.0), (0.0, 0.5, 0.0, 0.2)])
def test_mrd1_matches_truth(face: GenericFace, closures: tuple[float, float, float, float]) -> None:
    """Lids held at known closures (right upper, left upper, right lower, left lower)."""
    p = base_params(face)
    p.lids[[0, 4, 2, 6]] = closures
    truth = eyelid_measures(face, p)
    fitted = fit_sequence(face, [p] * 40)
    for s in ("r", "l"):
        for name in ("mrd1", "mrd2", "fissure_height"):
            got = np.mean(fitted.column(f"{name}_{s}_mm")[10:])
            # Means over 30 frames; measured errors up to 0.13 mm over three noise seeds and
            # three lid settings. 0.3 mm is a tenth of a typical MRD1.
            assert got == pytest.approx(truth[f"{name}_{s}_mm"], abs=0.3), (name, s)


def blink_truths(face: GenericFace, lid_indices: list[int]) -> list[AvatarParams]:
    """2 s open, then the given upper lids 0 -> 1 -> 0 over 6 frames, then 1.5 s open."""
    base = base_params(face)
    profile = [0.0] * 60 + [1 / 3, 2 / 3, 1.0, 2 / 3, 1 / 3] + [0.0] * 45
    truths = []
    for c in profile:
        p = base.copy()
        p.lids[lid_indices] = c
        truths.append(p)
    return truths


def test_synthetic_blink(face: GenericFace) -> None:
    truths = blink_truths(face, [0, 4])
    events = fit_sequence(face, truths).lid_events()
    expected = truth_series(face, truths).lid_events()
    assert [(e.kind, e.eyes) for e in events] == [("blink", "both")]
    # The true lids (openness 1, 2/3, 1/3, 0, 1/3, 2/3, 1) spend 3 frames (0.1 s) below
    # half their opening; the fitted blink lasts the same within one frame.
    assert expected[0].duration_s == pytest.approx(3 / FPS, abs=0.002)
    assert events[0].duration_s == pytest.approx(expected[0].duration_s, abs=1 / FPS)
    assert events[0].start_s == pytest.approx(expected[0].start_s, abs=1 / FPS)


def test_synthetic_wink(face: GenericFace) -> None:
    events = fit_sequence(face, blink_truths(face, [4])).lid_events()  # left upper lid only
    assert [(e.kind, e.eyes) for e in events] == [("wink", "l")]


def test_variable_frame_rate_is_resampled() -> None:
    """Jittered timestamps (a webcam's variable rate) do not shift or smear the oscillation."""
    rng = np.random.default_rng(5)
    t = np.cumsum(rng.uniform(0.5, 1.5, 120)) / FPS  # intervals 17-50 ms, mean 33 ms
    angles = np.column_stack([2.0 * np.sin(2 * math.pi * 3.0 * t), np.zeros_like(t)]) + rng.normal(scale=1.0, size=(120, 2))
    windows = nystagmus_windows(t, angles)
    assert windows and all(w.detected and w.direction == "horizontal" for w in windows)
    assert all(abs(w.frequency_hz - 3.0) < 0.2 and abs(w.amplitude_deg[0] - 2.0) < 0.4 for w in windows)


def swaying_head(t: np.ndarray) -> np.ndarray:
    """(N, 6) yaw, pitch, roll (deg), x, y, z (mm): a head swaying side to side at 1.1 Hz, as in p03."""
    phase = 2 * math.pi * 1.1 * t
    return np.column_stack([6 * np.sin(phase), 0.5 * np.sin(2 * phase), -4 * np.sin(phase + 0.3),
                            15 * np.sin(phase - 1.2), 3 * np.cos(2 * phase), 265 + 2 * np.sin(phase)])


def test_eye_angles_following_head_motion_are_not_nystagmus() -> None:
    """The fitted eye angles absorb the lag of the smoothed head pose: an artefact proportional
    to the head's velocity (p03: 92-99% of the eye angles' variance while he sways). Regressed
    out per window (step 2), it is no rhythm of the eyes; a real 3 Hz beat on top still is."""
    rng = np.random.default_rng(7)
    t = np.arange(240) / FPS  # 8 s
    head = swaying_head(t)
    velocity = np.gradient(head, t, axis=0)
    artefact = np.column_stack([0.12 * velocity[:, 3], -0.3 * velocity[:, 4]])  # up to +-11 deg and +-6 deg
    eyes = artefact + rng.normal(scale=1.0, size=(len(t), 2))
    ignoring_head = nystagmus_windows(t, eyes)
    assert all(w.detected for w in ignoring_head)
    assert not any(w.detected for w in nystagmus_windows(t, eyes, head=head))
    beat = eyes + np.column_stack([2.0 * np.sin(2 * math.pi * 3.0 * t), np.zeros_like(t)])
    windows = nystagmus_windows(t, beat, head=head)
    assert all(w.detected and w.direction == "horizontal" for w in windows)
    assert all(abs(w.frequency_hz - 3.0) < 0.2 and abs(w.amplitude_deg[0] - 2.0) < 0.4 for w in windows)


def test_an_oscillation_of_one_eye_is_not_conjugate() -> None:
    """The mean of the eyes holds half of one eye's beat; step 8 keeps it out of the conjugate
    verdict, while that eye's own signal still shows it (a monocular nystagmus)."""
    rng = np.random.default_rng(8)
    t = np.arange(120) / FPS
    right = np.column_stack([3.0 * np.sin(2 * math.pi * 3.0 * t), np.zeros_like(t)]) + rng.normal(scale=1.0, size=(120, 2))
    left = rng.normal(scale=1.0, size=(120, 2))
    mean = (right + left) / 2
    assert all(w.detected for w in nystagmus_windows(t, mean))
    assert not any(w.detected for w in nystagmus_windows(t, mean, eyes=(right, left)))
    assert all(w.detected for w in nystagmus_windows(t, right))
    beat = np.column_stack([3.0 * np.sin(2 * math.pi * 3.0 * t), np.zeros_like(t)])  # in both eyes: conjugate
    right, left = (beat + rng.normal(scale=1.0, size=(120, 2)) for _ in range(2))
    assert all(w.detected for w in nystagmus_windows(t, (right + left) / 2, eyes=(right, left)))


def test_false_alarm_rate_with_head_regressors() -> None:
    """White noise, a head pose wandering at random, 2 s windows at 30 fps: under 2% of
    windows significant (the F test stays exact with the regressors; 0.5-0.9% measured)."""
    rng = np.random.default_rng(9)
    t = np.arange(60) / FPS
    hits = 0
    for _ in range(400):
        head = np.cumsum(rng.normal(size=(60, 6)), axis=0)
        hits += analyse_window(t, rng.normal(scale=1.3, size=(60, 2)), head_covariates(t, head)).detected
    assert hits / 400 < 0.02


def test_summary_with_lost_face_is_plain_json(face: GenericFace) -> None:
    """Frames without a face are gaps, not zeros; the summary is valid JSON, with None for n/a."""
    gappy = MeasureSeries(face)
    for i, truth in enumerate(blink_truths(face, [0, 4])):
        gappy.add(i / FPS, None if 20 <= i < 30 else truth)
    assert np.isnan(gappy.column("mrd1_r_mm")[20:30]).all()
    summary = gappy.summary()
    assert summary["frames"] == 110 and summary["frames_with_face"] == 100
    assert [(e["kind"], e["eyes"]) for e in summary["lid_events"]["events"]] == [("blink", "both")]
    # The 2 s windows touching the 0.33 s gap are skipped, the others analysed.
    without_gap = nystagmus_windows(np.arange(110) / FPS, np.zeros((110, 2)))
    assert 0 < summary["nystagmus"]["both"]["windows"] < len(without_gap)
    json.dumps(summary, allow_nan=False)
    assert "1 blinks" in format_summary(summary)
    empty = MeasureSeries(face).summary()
    assert empty["eyes"]["r"]["mrd1_mm"]["median"] is None and empty["lid_events"]["blink_rate_per_min"] is None
    json.dumps(empty, allow_nan=False)


# --- real clips ----------------------------------------------------------------------------

_clips: dict[str, MeasureSeries] = {}


@pytest.fixture(scope="module")
def clip_series(face: GenericFace):
    """clip_series(name) -> MeasureSeries of the clip as `dmask measure` reads it, once per module."""
    from dmask_rt.pipeline import Masker

    assets.fetch()

    def get(name: str) -> MeasureSeries:
        if name not in _clips:
            series = MeasureSeries(face)
            with Masker(face=face) as masker, av.open(str(DATA / "videos" / name)) as container:
                for frame in container.decode(video=0):
                    series.add_values(float(frame.time), masker.process(frame.to_ndarray(format="rgb24")).params)
            _clips[name] = series
        return _clips[name]

    return get


def frames_of(series: MeasureSeries, start_s: float, end_s: float) -> tuple[float, float]:
    """Event times as (fractional) frame numbers of the clip."""
    fps = 1.0 / np.median(np.diff(series.times))
    return start_s * fps, end_s * fps


def test_p04_winks_and_closures(clip_series) -> None:
    series = clip_series("p04_eye_closure_look_down.mp4")
    events = [(e.kind, e.eyes, *frames_of(series, e.start_s, e.end_s)) for e in series.lid_events()]
    winks = [e for e in events if e[0] == "wink"]
    both = [e for e in events if e[1] == "both"]
    # Seen on the video: her left eye shut around frames 7-19 and her right eye at 36-45.
    # Measured: wink l 6.1-19.5, wink r 33.6-47.5 (frames at which the winking eye
    # crosses half its usual opening), and nothing else is a wink.
    assert [e[1] for e in winks] == ["l", "r"]
    assert winks[1][2] < 36 and winks[1][3] > 45
    assert winks[0][2] < 10 and winks[0][3] > 17
    # The slow closures (112-129, 226-249) are closures of both eyes. Measured: both-eye
    # events 104.0-134.6 and 212.9-255.4 (lids come down while she looks down first).
    for a, b in ((112, 129), (226, 249)):
        assert any(kind == "closure" and s <= a and e >= b for kind, _, s, e in both), (a, b, events)


def test_p02_single_frame_wink_reads_as_an_uneven_blink(clip_series) -> None:
    series = clip_series("p02_gaze_wink.mp4")
    events = series.lid_events()
    # Frame 388 only: left eye shut, right narrowed but open (seen on the video).
    # Measured relative openness there: left 0.43, right 0.62. The wink rule (other eye
    # above 0.7) calls it an uneven blink: the honest outcome for a thin single-frame
    # signal. What it must show is which eye closed.
    at_388 = [e for e in events if frames_of(series, e.start_s, e.end_s)[0] == pytest.approx(388, abs=0.5)]
    assert len(at_388) == 1
    right, left = at_388[0].min_openness
    assert left < CLOSE_BELOW < right and right - left > 0.1
    assert not any(e.kind == "wink" for e in events)


def test_p08_low_resolution_blinks_are_not_winks(clip_series) -> None:
    series = clip_series("p08_low_res_256.mp4")
    events = series.lid_events()
    # Seen on the video: every closure is a blink of both eyes. Measured: 10 both-eye
    # events, all with both eyes shut but one (frames 49-50, 0.65 / 0.45). On this 160 px
    # face the tracker reads the shut right eye at 0.2 of its width open, which the eye
    # refinement's blink rule shuts (tracker alone: 3 of them read 0.61-0.64 on the right).
    assert len(events) >= 8 and all(e.eyes == "both" for e in events), events


def test_p01_gaze_shifts_move_both_eyes_together(clip_series) -> None:
    series = clip_series("p01_gaze_left_right.mp4")
    gaze = series.column("gaze_horizontal_deg")
    difference = series.column("difference_horizontal_deg")
    events = series.lid_events()
    open_ = np.array([not any(e.start_s <= t <= e.end_s for e in events) for t in series.times])
    gaze, difference = gaze[open_], difference[open_]
    low, high = gaze < np.percentile(gaze, 25), gaze > np.percentile(gaze, 75)
    swing = np.median(gaze[high]) - np.median(gaze[low])
    change = np.median(difference[high]) - np.median(difference[low])
    slope = np.polyfit(gaze, difference, 1)[0]
    # Measured: the common gaze swings 76 deg between its quartiles while the
    # right-minus-left difference changes by 8.7 deg (24.6 -> 33.2), a slope of 0.16:
    # the eyes turn together. (The difference itself sits near 25 deg: convergence on a
    # near camera plus the generic eye's placement, 1.2 mm lateral of its fissure's
    # middle, which the eye transfer turns the avatar's eyes to match; only its variation
    # is tested.)
    # Limits at 0.2: with one eye not moving at all the difference would follow the
    # common gaze with slope +-2 (the gaze moves half as far as the moving eye).
    assert swing > 40
    assert abs(change) < 0.2 * swing
    assert abs(slope) < 0.2
    # Looking left and right is not nystagmus. Measured: the one window with the eyes open
    # throughout is not significant (without the interior-peak rule the clip's windows
    # were, at the band's 1 Hz edge: a step, not a rhythm).
    assert all(v["verdict"] == "none" for v in series.summary()["nystagmus"].values())


@pytest.mark.parametrize("clip", ["p01_gaze_left_right.mp4", "p03_glasses_blinks.mp4",
                                  "p04_eye_closure_look_down.mp4", "p06_talking_blinks.mp4", "p08_low_res_256.mp4"])
def test_dev_clips_have_no_nystagmus(clip_series, clip: str) -> None:
    """Normal eyes, talking, blinking, looking around. Measured before the head pose was
    regressed out: p03 (head swaying at 1.1 Hz) read a sustained 2.3 Hz vertical
    nystagmus of 3.5 deg (5 of 6 windows of the mean significant); after it, and with
    conjugacy, no signal of any clip has two consecutive significant windows with
    agreeing frequencies (p03: 3 of 6 windows of the right eye, at 4.3, 5.1 and 3.1 Hz)."""
    summary = clip_series(clip).summary()["nystagmus"]
    assert all(v["verdict"] == "none" for v in summary.values()), summary


def test_p02_fast_gaze_shifts_are_the_only_oscillation(clip_series) -> None:
    """p02 ends (from frame 457, 15.2 s) with fast voluntary gaze shifts, seen on the video:
    hard left, centre, hard right every 3-5 frames, about 3 Hz. Through the eye transfer
    the avatar's eyes follow them, and the conjugate signal holds a 3.3 Hz horizontal
    oscillation of 9.6 deg there (measured: windows 14-17 s): the detector cannot tell a
    voluntary back-and-forth from nystagmus, and says so only where the eyes did
    oscillate. Nothing before it is called, and neither eye alone is."""
    summary = clip_series("p02_gaze_wink.mp4").summary()["nystagmus"]
    assert summary["r"]["verdict"] == summary["l"]["verdict"] == "none", summary
    both = summary["both"]
    assert both["verdict"] == "horizontal" and both["start_s"] >= 14.0, both
    assert 2.5 < both["frequency_hz"] < 4.0, both
