"""`dmask eval`: metrics on known answers (the pixel reader on real renders of known
parameters, the clinical readings on known outlines), the attacker on real faces, a
small end-to-end run, bad input."""
from __future__ import annotations

import json
import re
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import DATA, assert_refused, run_dmask, video_frames
from dmask_rt.evaluate import avatar_pixels, baselines, clinical, fidelity, ocular, privacy, runner
from dmask_rt.measure import MeasureSeries
from dmask_rt.measure.blinks import LidEvent
from dmask_rt.model.camera import Camera
from dmask_rt.model.drawn_eye import EyeGeometry
from dmask_rt.model.eyeball import EYEBALL_RADIUS_MM, IRIS_DEPTH_MM, IRIS_RADIUS_MM, PUPIL_RADIUS_MM
from dmask_rt.model.generic_face import GenericFace
from dmask_rt.model.params import AvatarParams
from dmask_rt.pipeline import avatar_pose
from dmask_rt.render.renderer import AvatarRenderer
from dmask_rt.track.eye_outline import EyeOutline, read_eye
from dmask_rt.track.tracker import FaceTracker

CLIP = DATA / "videos" / "p09_webcam.mp4"
REID = DATA / "reid" / "face_recognition"


@pytest.fixture(scope="module")
def points() -> np.ndarray:
    frame = next(video_frames(CLIP))
    return FaceTracker().track(frame).points.astype(np.float64)


@pytest.fixture(scope="module")
def embedder() -> privacy.Embedder:
    return privacy.Embedder()


def _series(points: np.ndarray, n: int = 4) -> fidelity.Series:
    fit = (np.eye(3), np.zeros((2, 2)), (0.0, 0.0, 0.0))
    return fidelity.Series.build(np.arange(n) / 30, [points] * n, [fit] * n)


def test_identical_videos_give_zero_error(points):
    result = fidelity.compare(_series(points), _series(points), width=640)
    assert result["tracked_share"] == 1.0
    assert result["eye_region_error_pct_width"]["mean"] == 0.0
    assert result["gaze_error_deg"]["right"]["mean"] == 0.0
    assert result["lid_error_iris"]["mrd1"]["mean"] == 0.0
    assert result["head_pose_error_deg"]["mean"] < 1e-5


def test_shifted_copy_gives_the_shift(points):
    shifted = points + np.array([6.4, 0.0])  # 1% of a 640-pixel width
    result = fidelity.compare(_series(points), _series(shifted), width=640)
    assert result["eye_region_error_pct_width"]["mean"] == pytest.approx(1.0)
    iod = np.linalg.norm(points[468] - points[473])
    assert result["eye_region_error_iod"]["mean"] == pytest.approx(6.4 / iod)
    assert result["lid_error_iris"]["fissure"]["mean"] == pytest.approx(0.0, abs=1e-9)  # lids move with the eye


def test_recoded_baseline_moves_no_pixel_and_changes_grey_levels_a_little():
    rgb = next(video_frames(CLIP))
    out = baselines.recoded(rgb, None)
    assert out.shape == rgb.shape and out.dtype == rgb.dtype
    diff = np.abs(out.astype(int) - rgb.astype(int))
    assert 0.0 < diff.mean() < 2.0


def test_blur_at_reduced_size_is_the_full_size_blur():
    import cv2

    rgb = next(video_frames(CLIP))
    for sigma in (3.0, 25.0, 60.0):
        full = cv2.GaussianBlur(rgb, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE).astype(int)
        diff = np.abs(baselines._gaussian(rgb, sigma).astype(int) - full)
        assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 10  # the rest is at the edges


def test_lid_distances_are_consistent(points):
    lids = fidelity.lid_distances(points)
    assert np.all(lids[:, 0] > 0) and np.all(lids[:, 1] > 0)  # open eyes: pupil between the lids
    np.testing.assert_allclose(lids[:, 2], lids[:, 0] + lids[:, 1])
    np.testing.assert_allclose(fidelity.lid_distances(points * 2 + 5), lids, atol=1e-9)  # scale-free


def test_lid_event_f1_needs_the_same_eyes_and_overlap_and_kappa():
    blink = LidEvent("blink", "both", 1.0, 1.2, (0.1, 0.1))
    wink = LidEvent("wink", "l", 3.0, 3.3, (0.9, 0.2))
    assert fidelity.event_f1([blink, wink], [blink, wink]) == 1.0
    # The wink read as a blink of both eyes does not agree; a blink elsewhere in time neither.
    assert fidelity.event_f1([blink, wink], [blink, LidEvent("blink", "both", 3.0, 3.3, (0.2, 0.2))]) == pytest.approx(0.5)
    assert fidelity.event_f1([blink], [LidEvent("blink", "both", 1.3, 1.5, (0.1, 0.1))]) == 0.0
    assert fidelity.event_f1([], []) is None
    assert fidelity.cohen_kappa(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0])) == pytest.approx(0.5)
    assert fidelity.cohen_kappa(np.array([1, 0, 1]), np.array([1, 0, 1])) == 1.0
    assert fidelity.cohen_kappa(np.zeros(5), np.zeros(5)) is None


def _with_openness(series: fidelity.Series, openness: np.ndarray) -> fidelity.Series:
    series.openness[:] = openness
    return series


def test_blink_agreement_on_known_events(points):
    n = 60
    open_ = np.full((n, 2), 0.3)
    original = open_.copy()
    original[10:14] = 0.03     # a blink of both eyes
    original[40:45, 1] = 0.03  # a wink of the left eye
    same = fidelity.blink_agreement(_with_openness(_series(points, n), original), _with_openness(_series(points, n), original))
    assert (same["events_original"], same["f1"], same["kappa"]) == (2, 1.0, 1.0)
    as_blink = original.copy()
    as_blink[40:45, 0] = 0.03  # the wink shown as a blink
    result = fidelity.blink_agreement(_with_openness(_series(points, n), original), _with_openness(_series(points, n), as_blink))
    assert result["f1"] == pytest.approx(0.5) and 0 < result["kappa"] < 1
    # Frames where the output shows no face are open eyes: the blink is missed there.
    faceless = _with_openness(_series(points, n), original)
    faceless.found[8:16] = False
    assert fidelity.blink_agreement(_with_openness(_series(points, n), original), faceless)["f1"] == pytest.approx(2 / 3)


def _measured(face: GenericFace, n: int, right_eye_deg: float = 0.0) -> MeasureSeries:
    series = MeasureSeries(face)
    for i in range(n):
        eyes = np.zeros((2, 2))
        eyes[0, 0] = np.radians(right_eye_deg)
        params = AvatarParams(np.eye(3), np.array([0.0, 0.0, 500.0]), np.zeros(face.n_expression), np.zeros(8), eyes)
        series.add(i / 30, params)
    return series


def test_ocular_measures_compare_known_answers():
    face = GenericFace.load()
    same = ocular.compare(ocular.read(_measured(face, 40)), ocular.read(_measured(face, 40)))
    assert same["errors"]["group_mrd1_iris"]["mean"] == 0.0 and same["errors"]["group_eye_angle_deg"]["n"] == 160
    assert same["nystagmus"]["original"] == same["nystagmus"]["output"]
    turned = ocular.compare(ocular.read(_measured(face, 40)), ocular.read(_measured(face, 40, right_eye_deg=5.0)))
    assert turned["errors"]["eye_r_horizontal_deg"]["mean"] == pytest.approx(5.0)
    assert turned["errors"]["eye_l_horizontal_deg"]["mean"] == 0.0
    assert turned["errors"]["deviation_horizontal_deg"]["mean"] == pytest.approx(5.0)
    pooled = ocular.pooled([same, turned])
    assert pooled["errors"]["deviation_horizontal_deg"]["mean"] == pytest.approx(2.5)
    assert pooled["nystagmus_agreement"] == 1.0


# --- the avatar read from its pixels ----------------------------------------------------

@pytest.fixture(scope="module")
def avatar():
    """Render (image, drawn outlines) of the generic face for lid closures and eye angles (degrees)."""
    face = GenericFace.load()
    camera = Camera.for_image(640, 480)
    geometry = EyeGeometry(face)
    renderer = AvatarRenderer(640, 480, face.topology(), eyeball_radius=EYEBALL_RADIUS_MM,
                              iris_radius=IRIS_RADIUS_MM, pupil_radius=PUPIL_RADIUS_MM)

    def render(upper: float = 0.0, lower: float = 0.0, eyes_deg: tuple = ((0, 0), (0, 0)), z: float = 420.0,
               fissure: tuple = (0.0, 0.0)):
        lids = np.zeros(8)
        lids[[0, 4]], lids[[2, 6]] = upper, lower
        params = AvatarParams(np.eye(3), np.array([0.0, 0.0, z]), np.zeros(face.n_expression), lids, np.radians(eyes_deg),
                              fissure=np.array(fissure))
        return renderer.render(camera, *avatar_pose(face, params)), geometry.outlines(params, camera)

    yield render
    renderer.release()


def _agrees(pixel: avatar_pixels.PixelEye, drawn: EyeOutline) -> None:
    """The pixel readings equal the drawn ones within the reader's tolerance, in clinical units."""
    d, p = read_eye(drawn), pixel.readings
    diameter, width = 2 * drawn.iris_radius, float(np.linalg.norm(drawn.corners[1] - drawn.corners[0]))
    tol = avatar_pixels.TOLERANCE_PX
    assert pixel.confirmed, pixel.reasons
    assert abs(p.mrd1 - d.mrd1) <= 2 * tol / diameter and abs(p.mrd2 - d.mrd2) <= 2 * tol / diameter
    assert abs(p.place_h - d.place_h) <= tol / width and abs(p.place_v - d.place_v) <= tol / width
    assert abs(p.upper_mid - d.upper_mid) <= 2 * tol / diameter and abs(p.lower_mid - d.lower_mid) <= 2 * tol / diameter


def test_pixels_confirm_open_shut_retracted_and_turned_eyes(avatar):
    image, drawn = avatar()
    for pixel, outline in zip(avatar_pixels.read_frame(image, drawn), drawn):
        _agrees(pixel, outline)
        assert pixel.eyeball_px > 100 and not read_eye(outline).sclera_above
    # A shut lid leaves no eyeball pixel, and the drawn outline reads shut, whatever the
    # fissure's stretch (the patient's proportions).
    for fissure in ((0.0, 0.0), (0.3, -0.2)):
        image, drawn = avatar(upper=0.7, lower=0.3, fissure=fissure)
        for pixel, outline in zip(avatar_pixels.read_frame(image, drawn), drawn):
            assert read_eye(outline).shut and pixel.eyeball_px == 0 and pixel.confirmed
        image, drawn = avatar(fissure=fissure)
        for pixel, outline in zip(avatar_pixels.read_frame(image, drawn), drawn):
            _agrees(pixel, outline)
    # A retracted upper lid: sclera shows above the iris, in the drawing and in the pixels.
    image, drawn = avatar(upper=-0.8)
    for pixel, outline in zip(avatar_pixels.read_frame(image, drawn), drawn):
        _agrees(pixel, outline)
        assert read_eye(outline).sclera_above and pixel.readings.sclera_above
    # Strong convergence (each eye 30 degrees nasally): the irises deep in the inner corners.
    image, drawn = avatar(eyes_deg=((30, 0), (-30, 0)))
    for pixel, outline in zip(avatar_pixels.read_frame(image, drawn), drawn):
        _agrees(pixel, outline)
        assert read_eye(outline).place_h > 0.65


def test_pixels_refuse_a_drawing_they_do_not_show(avatar):
    """The check can fail: pixels of one eye read against another drawing."""
    open_image, open_drawn = avatar()
    shut_image, _ = avatar(upper=1.0)
    _, retracted_drawn = avatar(upper=-0.8)
    _, turned_drawn = avatar(eyes_deg=((20, 0), (20, 0)))
    assert "open drawn, no eyeball pixel" in avatar_pixels.read_pixels(shut_image, open_drawn[0]).reasons
    assert "upper lid" in avatar_pixels.read_pixels(open_image, retracted_drawn[0]).reasons
    assert "iris centre" in avatar_pixels.read_pixels(open_image, turned_drawn[0]).reasons


def test_a_shut_eye_reads_open_only_on_a_colour_no_skin_shade_explains(avatar):
    """One pixel painted into a shut eye's closed lid: the faded end of a lash line seen in
    a p02 close-up, (56, 41, 34), is as near an iris shade as a brow shade (8-bit rounding)
    and leaves the eye shut; the iris's own colour, or the sclera's, opens it."""
    image, drawn = avatar(upper=0.7, lower=0.3)
    row, col = np.round(0.5 * (drawn[0].upper[3] + drawn[0].lower[3])).astype(int)[::-1]
    for colour, shut in (((56, 41, 34), True), ((84, 56, 40), False), ((240, 237, 230), False)):
        painted = image.copy()
        painted[row, col] = colour
        pixel = avatar_pixels.read_pixels(painted, drawn[0])
        assert (pixel.eyeball_px == 0) == shut and pixel.confirmed == shut


def test_palette_classes_on_flat_colours():
    from dmask_rt.render import palette

    flat = np.array([[palette.SCLERA_RGB, palette.IRIS_RGB, palette.PUPIL_RGB, palette.SKIN_RGB, palette.SOCKET_RGB]], np.uint8)
    shaded = (flat * 0.7).astype(np.uint8)
    names = ["sclera", "iris", "pupil", "skin", "socket"]
    assert [avatar_pixels.CLASSES[c] for c in avatar_pixels.classify(flat)[0]] == names
    assert [avatar_pixels.CLASSES[c] for c in avatar_pixels.classify(shaded)[0]] == names


# --- clinical readings ---------------------------------------------------------------------

RULER = IRIS_DEPTH_MM / IRIS_RADIUS_MM  # iris-centre travel per sin(angle), in limbus radii


def _outline(angle_h_deg: float = 0.0, angle_v_deg: float = 0.0, mrd1: float = 0.3, mrd2: float = 0.4,
             left: float = 100.0) -> EyeOutline:
    """A 30 px wide eye with a 6 px limbus radius whose iris sits at the given rotation."""
    r = 6.0
    centre = np.array([left + 15.0 + RULER * r * np.sin(np.radians(angle_h_deg)), 50.0 - RULER * r * np.sin(np.radians(angle_v_deg))])
    xs = left + np.array([5.0, 10.0, 15.0, 20.0, 25.0])
    upper = np.column_stack([xs, np.full(5, centre[1] - mrd1 * 2 * r)])
    lower = np.column_stack([xs, np.full(5, centre[1] + mrd2 * 2 * r)])
    return EyeOutline(np.array([[left, 50.0], [left + 30.0, 50.0]]), upper, lower, centre, r)


def test_eye_angles_read_the_iris_offset_with_the_iris_as_ruler():
    assert clinical.eye_angles(_outline(10.0, -5.0)) == pytest.approx((10.0, -5.0), abs=1e-6)
    # Scale-free: the same eye twice as large reads the same angles.
    o = _outline(12.0, 3.0)
    double = EyeOutline(o.corners * 2, o.upper * 2, o.lower * 2, o.iris_centre * 2, o.iris_radius * 2)
    assert clinical.eye_angles(double) == pytest.approx((12.0, 3.0), abs=1e-6)


def _track(frames: list[tuple[EyeOutline, EyeOutline] | None]) -> clinical.EyeTrack:
    return clinical.EyeTrack.from_outlines(np.arange(len(frames)) / 30, frames)


def test_clinical_compare_known_answers():
    n = 30
    straight = (_outline(), _outline(left=200.0))
    original = [straight] * n
    original[10:14] = [(_outline(mrd1=-0.2, mrd2=0.2), _outline(mrd1=-0.2, mrd2=0.2, left=200.0))] * 4  # both shut
    same = clinical.compare(_track(original), _track(original))
    assert same["mrd1"]["mean"] == 0.0 and same["deviation_h_pd"]["mean"] == 0.0
    assert same["closures"] == {"events_original": 1, "events_output": 1, "f1": 1.0}
    assert same["sclera_above"]["agreement"] == 1.0 and same["mrd1"]["n"] == 2 * (n - 4)  # shut eyes: no MRD
    # The output: the right eye 5 degrees further right (a 5-degree deviation, 8.7 PD),
    # its upper lid 0.7 iris diameters above the centre (sclera above), no closure.
    turned = (_outline(5.0, mrd1=0.7), _outline(left=200.0))
    result = clinical.compare(_track(original), _track([turned] * n))
    assert result["deviation_h_pd"]["mean"] == pytest.approx(100 * np.tan(np.radians(5.0)))
    assert result["deviation_h_pd"]["within_tolerance"] == 0.0 and result["deviation_v_pd"]["mean"] == pytest.approx(0.0, abs=1e-9)
    assert result["mrd1"]["mean"] == pytest.approx(0.2)  # half the eyes off by 0.4
    # Flat lids: the upper lid's height at the fissure's middle moves with it, the lower stays.
    assert result["upper_mid"]["mean"] == pytest.approx(0.2) and result["lower_mid"]["mean"] == pytest.approx(0.0, abs=1e-9)
    assert same["upper_mid"]["mean"] == 0.0 and same["upper_mid"]["n"] == 2 * (n - 4)
    assert result["sclera_above"]["agreement"] == pytest.approx(0.5)
    assert result["place_h"]["mean"] == pytest.approx(RULER * 6 * np.sin(np.radians(5.0)) / 30 / 2)
    assert result["closures"]["f1"] == 0.0
    # No face in the output during the closure: a missed closure too; elsewhere not counted.
    faceless = list(original)
    faceless[8:16] = [None] * 8
    assert clinical.compare(_track(original), _track(faceless))["closures"]["f1"] == 0.0
    pooled = clinical.pooled([same, result])
    assert pooled["closures"]["f1"] == pytest.approx(2 / 3) and pooled["deviation_h_pd"]["within_tolerance"] == 0.5


def test_closure_events_are_runs_of_the_eyes_shut_in_them():
    shut = np.zeros((10, 2), bool)
    shut[2:4] = True            # both
    shut[6:8, 1] = True         # left alone: a wink
    events = clinical.closure_events(np.arange(10.0), shut)
    assert [(e.eyes, e.start_s, e.end_s) for e in events] == [("both", 2.0, 3.0), ("l", 6.0, 7.0)]


def test_chance_level_and_rank1():
    a, b = np.zeros(128), np.ones(128)
    gallery = privacy.Gallery([a, b], ["A", "B"])
    result = privacy.identify([a + 0.01, None, b], ["A", "A", "A"], gallery, ["A", "B", "C", "D"])
    assert result["chance"] == 0.25
    assert result["rank1"] == pytest.approx(1 / 3)  # the undetected probe counts as a miss
    assert result["rank1_detected"] == 0.5
    assert privacy.identify([a], ["A"], privacy.Gallery(), ["A", "B"])["rank1"] == 0.0
    # Every probe nearest to A (a "hub"): rank-1 is A's share of the probes, which is
    # exactly what the same answers in a random order score.
    hub = privacy.identify([a, a + 0.1, a + 0.2, a], ["A", "B", "C", "D"], gallery, ["A", "B", "C", "D"])
    assert hub["rank1"] == 0.25 and hub["chance_given_answers"] == 0.25 and hub["answers"] == {"A": 4.0}
    # Identical frames of every identity: a tie, worth 1 / the tied identities (chance).
    tied = privacy.Gallery([a, a, a], ["A", "B", "C"])
    assert privacy.identify([a, a], ["A", "B"], tied, ["A", "B", "C"])["rank1"] == pytest.approx(1 / 3)


def _run(identity: str, probes: list[np.ndarray], frames: int = 40) -> object:
    from types import SimpleNamespace

    found = SimpleNamespace(found=np.ones(frames, bool))
    return SimpleNamespace(identity=identity, probe_frames=list(range(0, frames, frames // len(probes))),
                           originals=[np.zeros(128)] * len(probes), series={"original": found}, probes={"mask": probes})


def test_mask2mask_within_and_across_clips():
    rng = np.random.default_rng(1)
    look = {who: rng.normal(size=128) for who in "ABC"}
    noisy = lambda who, k: [look[who] + 0.01 * rng.normal(size=128) for _ in range(k)]  # noqa: E731
    runs = [_run("A", noisy("A", 4)), _run("A", noisy("A", 4)), _run("B", noisy("B", 4)), _run("C", noisy("C", 4))]
    within = runner._mask2mask(runs, lambda r: r.probes["mask"])
    assert within["rank1"] == 1.0 and within["chance"] == pytest.approx(1 / 3)
    across = runner._mask2mask_across(runs, lambda r: r.probes["mask"])
    assert (across["pairs"], across["probes"], across["rank1"]) == (2, 8, 1.0) and across["chance"] == pytest.approx(1 / 3)
    # A's second clip looks like B: its probes are taken for B (half the pairs miss every probe).
    runs[1] = _run("A", noisy("B", 4))
    assert runner._mask2mask_across(runs, lambda r: r.probes["mask"])["rank1"] <= 0.5
    assert runner._mask2mask_across(runs[1:], lambda r: r.probes["mask"]) is None  # nobody has two clips


def test_empty_or_faceless_gallery_is_refused(tmp_path, embedder):
    with pytest.raises(privacy.GalleryError, match="no NAME"):
        privacy.load_gallery(tmp_path, embedder)
    (tmp_path / "nobody").mkdir()
    (tmp_path / "nobody" / "grey.jpg").write_bytes(_jpeg(np.full((200, 200, 3), 128, np.uint8)))
    with pytest.raises(privacy.GalleryError, match="detectable face"):
        privacy.load_gallery(tmp_path, embedder)
    with pytest.raises(privacy.GalleryError, match="not found"):
        privacy.load_gallery(tmp_path / "missing", embedder)


def _jpeg(rgb: np.ndarray) -> bytes:
    import cv2

    return cv2.imencode(".jpg", rgb)[1].tobytes()


def _write_clip(path: Path, frames: list[np.ndarray]) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())


def test_unreadable_video_is_skipped_and_all_unreadable_is_an_error(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    pairs, skipped = runner._readable([bad, CLIP], [None, None])
    assert pairs == [(CLIP, None)] and skipped[0]["item"] == str(bad)
    with pytest.raises(runner.EvaluationInputError, match="none of the videos"):
        runner._readable([bad], [None])


def test_masked_video_must_match(tmp_path, embedder):
    frames = list(video_frames(CLIP))[:5]
    short = tmp_path / "short.mp4"
    _write_clip(short, frames)
    with pytest.raises(runner.EvaluationInputError, match="ends at frame 5"):
        runner.run_clip(CLIP, 10, runner.GenericFace.load(), embedder, masked=short)
    small = tmp_path / "small.mp4"
    _write_clip(small, [f[::2, ::2].copy() for f in frames])
    with pytest.raises(runner.EvaluationInputError, match="320x180, but"):
        runner._readable([CLIP], [small])
    with pytest.raises(runner.EvaluationInputError, match="one per video"):
        runner._default_masked([CLIP, CLIP], [small])


def test_cli_refuses_unusable_input(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    assert_refused(run_dmask("eval", bad, "--out", tmp_path / "r", cwd=tmp_path), "none of the videos")
    assert_refused(run_dmask("eval", CLIP, "--gallery", tmp_path, "--out", tmp_path / "r", cwd=tmp_path), "no NAME")
    assert not (tmp_path / "r").exists()


def test_small_evaluation_end_to_end(tmp_path):
    """Two dev clips of different sizes and lengths (the second cut short, to keep this
    quick), plus an unreadable one that is skipped."""
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    short = tmp_path / "p08_first_40.mp4"
    _write_clip(short, list(video_frames(DATA / "videos" / "p08_low_res_256.mp4"))[:40])
    clips = [CLIP, short, bad]
    result = run_dmask("eval", *clips, "--gallery", REID, "--step", 10, "--out", tmp_path / "r", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "| digital mask |" in result.stdout and "Targets" in result.stdout
    assert "| digital mask, as drawn |" in result.stdout and "Pixel check:" in result.stdout
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert [s["item"] for s in report["skipped"]] == [str(bad)]
    assert len(report["clips"]) == 2
    for name in runner.OUTPUTS:
        assert set(report["privacy"][name]) == {"identification", "mask2mask", "mask2mask_across", "verification", "detection"}
        assert report["privacy"][name]["mask2mask_across"] is None  # no person with two clips here
        assert name in report["fidelity"]["pooled"]
    raw = report["privacy"]["raw"]
    assert raw["identification"]["rank1"] >= 0.9 and raw["mask2mask"]["rank1"] >= 0.9
    assert raw["verification"]["share"] >= 0.9
    assert raw["identification"]["chance"] == pytest.approx(1 / (5 + 2))  # 5 gallery people + p09 + p08
    # Every clinical channel held constant: every frame the same, Mask2Mask exactly at chance.
    constant = report["privacy"]["constant_channels"]["mask2mask"]
    assert constant["detected"] == constant["probes"] > 0 and constant["rank1"] == pytest.approx(constant["chance"])
    assert report["fidelity"]["pooled"]["raw"]["eye_region_error_pct_width"]["mean"] == 0.0
    mask = report["fidelity"]["pooled"]["mask"]
    # The tracker's floor sits under every output that changes the picture.
    floor = report["fidelity"]["pooled"]["recoded"]["eye_region_error_pct_width"]["mean"]
    for name in ("mask", "eye_crop"):
        assert floor < report["fidelity"]["pooled"][name]["eye_region_error_pct_width"]["mean"]
    assert mask["tracked_share"] > 0.9 and mask["eye_region_error_pct_width"]["mean"] is not None
    # The clinical table: the original reads itself exactly; the mask is read by what it draws.
    clin = report["fidelity"]["clinical"]["pooled"]
    assert clin["raw"]["mrd1"]["mean"] == 0.0 and clin["raw"]["sclera_above"]["agreement"] == 1.0
    assert clin["mask_drawn"]["read_share"] > 0.9 and clin["mask_drawn"]["mrd1"]["n"] > 0
    assert clin["mask_pixels"]["mrd1"]["n"] > 0 and clin["mask"]["mrd1"]["n"] > 0
    check = report["fidelity"]["pixel_check"]["pooled"]
    assert check["frames"] > 0 and 0.0 <= check["share"] <= 1.0
    assert {t["target"] for t in report["targets"]} >= {"mrd1", "place_h", "closure_f1", "deviation_h", "blink_f1",
                                                        "identification", "verification", "mask2mask_constant"}
    # The ocular measures as `dmask measure` reads them: the raw original reads exactly the original.
    ocular_raw = report["fidelity"]["ocular"]["pooled"]["raw"]
    assert ocular_raw["errors"]["group_mrd1_iris"]["mean"] == 0.0 and ocular_raw["lid_events"]["f1"] == 1.0
    assert report["fidelity"]["ocular"]["pooled"]["mask"]["errors"]["group_eye_angle_deg"]["n"] > 0
    assert "Ocular measures as `dmask measure` reads them" in result.stdout
    page = (tmp_path / "r" / "report.html").read_text()
    for section in ("Clinical fidelity (primary)", "Readability (secondary, the old protocol): fidelity",
                    "Readability (secondary): ocular measures", "Baseline table: privacy", "Error histograms",
                    "Per-frame traces", "Sample frames"):
        assert section in page
    # Self-contained: no link out (base64 image data may spell "http" by chance: not counted).
    assert page.count("data:image/png;base64,") >= 5
    assert "http" not in re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
