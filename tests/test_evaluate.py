"""`dmask eval`: metrics on known answers, the attacker on real faces, a small end-to-end run, bad input."""
from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import DATA, assert_refused, run_dmask, video_frames
from dmask_rt.evaluate import baselines, fidelity, ocular, privacy, runner
from dmask_rt.measure import MeasureSeries
from dmask_rt.measure.blinks import LidEvent
from dmask_rt.model.generic_face import GenericFace
from dmask_rt.model.params import AvatarParams
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


def test_chance_level_and_rank1():
    a, b = np.zeros(128), np.ones(128)
    gallery = privacy.Gallery([a, b], ["A", "B"])
    result = privacy.identify([a + 0.01, None, b], ["A", "A", "A"], gallery, ["A", "B", "C", "D"])
    assert result["chance"] == 0.25
    assert result["rank1"] == pytest.approx(1 / 3)  # the undetected probe counts as a miss
    assert result["rank1_detected"] == 0.5
    assert privacy.identify([a], ["A"], privacy.Gallery(), ["A", "B"])["rank1"] == 0.0


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
    """Two dev clips of different sizes and lengths, plus an unreadable one that is skipped."""
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    clips = [CLIP, DATA / "videos" / "p08_low_res_256.mp4", bad]
    result = run_dmask("eval", *clips, "--gallery", REID, "--step", 10, "--out", tmp_path / "r", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "| digital mask |" in result.stdout and "Targets" in result.stdout
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert [s["item"] for s in report["skipped"]] == [str(bad)]
    assert len(report["clips"]) == 2
    for name in runner.OUTPUTS:
        assert set(report["privacy"][name]) == {"identification", "mask2mask", "verification", "detection"}
        assert name in report["fidelity"]["pooled"]
    raw = report["privacy"]["raw"]
    assert raw["identification"]["rank1"] >= 0.9 and raw["mask2mask"]["rank1"] >= 0.9
    assert raw["verification"]["share"] >= 0.9
    assert raw["identification"]["chance"] == pytest.approx(1 / (5 + 2))  # 5 gallery people + p09 + p08
    assert report["fidelity"]["pooled"]["raw"]["eye_region_error_pct_width"]["mean"] == 0.0
    mask = report["fidelity"]["pooled"]["mask"]
    # The tracker's floor sits under every output that changes the picture.
    floor = report["fidelity"]["pooled"]["recoded"]["eye_region_error_pct_width"]["mean"]
    for name in ("mask", "eye_crop"):
        assert floor < report["fidelity"]["pooled"][name]["eye_region_error_pct_width"]["mean"]
    assert mask["tracked_share"] > 0.9 and mask["eye_region_error_pct_width"]["mean"] is not None
    assert {t["target"] for t in report["targets"]} >= {"eye_region", "blink_f1", "identification", "verification"}
    # The ocular measures as `dmask measure` reads them: the raw original reads exactly the original.
    ocular_raw = report["fidelity"]["ocular"]["pooled"]["raw"]
    assert ocular_raw["errors"]["group_mrd1_iris"]["mean"] == 0.0 and ocular_raw["lid_events"]["f1"] == 1.0
    assert report["fidelity"]["ocular"]["pooled"]["mask"]["errors"]["group_eye_angle_deg"]["n"] > 0
    assert "Ocular measures as `dmask measure` reads them" in result.stdout
    page = (tmp_path / "r" / "report.html").read_text()
    for section in ("Baseline table: fidelity", "Baseline table: ocular measures", "Baseline table: privacy", "Error histograms", "Per-frame traces", "Sample frames"):
        assert section in page
    assert page.count("data:image/png;base64,") >= 5 and "http" not in page
