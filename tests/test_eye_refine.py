"""EyeRefiner: known answers on drawn eyes, and shut/open on real frames.

The synthetic eye is drawn at 4x and box-downsampled (anti-aliased edges): skin, an
opening bounded by two lid curves through the corners, sclera inside it, an iris disc
of known centre and radius clipped by the lids, a lash line along the upper margin and
a darker margin strip along the lower one, a blur and noise. As on real eyes (mean
profiles across the labelled margins: darkest at the margin, the eyeball brightening
over 0.03-0.05 of the fissure width away from it) the lids shade the sclera next to
them, so the steepest point of a lid's step lies inside the eye and the margin is at
the step's foot. Each refinement starts from an outline perturbed the way the
tracker errs (a slit left open, a retracted lid put on the iris, an iris pulled to the
middle).
"""
from __future__ import annotations

import numpy as np
import pytest

from dmask_rt.track.eye_outline import SHUT_OPENING, EyeOutline, read_eye
from dmask_rt.track.eye_refine import EyeRefiner

from conftest import DATA, video_frames

SS = 4  # supersampling of the drawing
SKIN, SCLERA, IRIS, LASH = (205, 150, 130), (232, 228, 224), (70, 45, 35), (45, 32, 30)
LOWER_MARGIN = (160, 105, 95)
#: The lids' shade on the sclera: darkening at the margin and its decay length (fissure widths), upper, lower.
SHADE = ((0.45, 0.03), (0.25, 0.02))


def lid(t: np.ndarray, peak: float, width: float, skew: float = 0.0) -> np.ndarray:
    """Height (down +) of a lid through both corners, `peak` fissure widths at mid-eye."""
    return 4.0 * peak * width * t * (1.0 - t) * (1.0 + skew * (t - 0.5))


def draw_eye(width: float, up: float, low: float, iris: tuple[float, float, float] | None,
             size: tuple[int, int] = (120, 160), origin: tuple[float, float] = (40.0, 60.0),
             seed: int = 0, catch_lights: bool = False, iris_colour: tuple = IRIS,
             lower_margin: tuple = LOWER_MARGIN, strip: float = 0.03, up_skew: float = 0.3) -> np.ndarray:
    """An RGB eye: corners at origin and origin + (width, 0); upper lid `up` W above the
    axis at mid-eye (its skew `up_skew`), lower lid `low` W below; iris (s, h, r) in pixels from the left corner;
    catch_lights: a ring-light's reflection, six bright dots in the iris's lower half;
    lower_margin, strip: the colour and width (fissure widths) of the strip along the lower margin."""
    import cv2

    h, w = size
    ys, xs = np.mgrid[0 : h * SS, 0 : w * SS]
    x, y = (xs + 0.5) / SS - 0.5 - origin[0], (ys + 0.5) / SS - 0.5 - origin[1]
    t = x / width
    inside_t = (t > 0) & (t < 1)
    top, bottom = -lid(np.clip(t, 0, 1), up, width, up_skew), lid(np.clip(t, 0, 1), low, width)
    img = np.empty((h * SS, w * SS, 3), float)
    img[:] = SKIN
    opening = inside_t & (y > top) & (y < bottom)
    shade = (1.0 - SHADE[0][0] * np.exp(-(y - top) / (SHADE[0][1] * width))
             - SHADE[1][0] * np.exp(-(bottom - y) / (SHADE[1][1] * width)))
    img[opening] = np.asarray(SCLERA, float) * shade[opening][:, None]
    if iris is not None:
        disc = (x - iris[0]) ** 2 + (y - iris[1]) ** 2 < iris[2] ** 2
        img[opening & disc] = iris_colour
        if catch_lights:
            for ang in np.linspace(0.15 * np.pi, 0.85 * np.pi, 6):
                cx, cy = iris[0] + 0.45 * iris[2] * np.cos(ang), iris[1] + 0.45 * iris[2] * np.sin(ang)
                img[(x - cx) ** 2 + (y - cy) ** 2 < (0.1 * iris[2]) ** 2] = (250, 250, 250)
    lash = inside_t & (y <= top) & (y > top - 0.05 * width)  # lashes above the upper margin
    img[lash] = LASH
    img[inside_t & (y >= bottom) & (y < bottom + strip * width)] = lower_margin
    small = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 0.7)
    small += np.random.default_rng(seed).normal(0.0, 3.0, small.shape)
    return np.clip(small, 0, 255).astype(np.uint8)


def outline_of(width: float, up: float, low: float, iris: tuple[float, float, float],
               origin: tuple[float, float] = (40.0, 60.0), up_skew: float = 0.3) -> EyeOutline:
    """The outline of a drawn eye (image-left corner lateral: a subject's right eye)."""
    t = (np.arange(7) + 1.0) / 8.0
    s = t * width + origin[0]
    upper = np.stack([s, origin[1] - lid(t, up, width, up_skew)], 1)
    lower = np.stack([s, origin[1] + lid(t, low, width)], 1)
    corners = np.array([origin, (origin[0] + width, origin[1])], float)
    return EyeOutline(corners, upper, lower, np.array([iris[0] + origin[0], iris[1] + origin[1]]), iris[2])


def margin_error(got: EyeOutline, truth_up: float, truth_low: float, width: float,
                 origin: tuple[float, float] = (40.0, 60.0)) -> tuple[float, float]:
    """Worst vertical distance (pixels) of the refined margin points from the drawn lids."""
    errs = []
    for pts, f in ((got.upper, lambda t: -lid(t, truth_up, width, 0.3)), (got.lower, lambda t: lid(t, truth_low, width))):
        t = (pts[:, 0] - origin[0]) / width
        errs.append(float(np.max(np.abs(pts[:, 1] - origin[1] - f(t)))))
    return errs[0], errs[1]


W = 60.0


@pytest.mark.parametrize("catch_lights", [False, True])
def test_open_eye_from_a_perturbed_outline(catch_lights: bool):
    """The lower lid and the limbus come to the drawn edges (catch lights or not). By design
    two things start right: the upper lid resting on the iris (there the tracker's height is
    kept), and the iris centre's height (with only the side arcs showing, it is held near the
    start's)."""
    truth = (30.0, 2.0, 12.0)  # iris centre (s, h) and radius, pixels
    rgb = draw_eye(W, 0.17, 0.15, truth, catch_lights=catch_lights)
    start = outline_of(W, 0.17, 0.19, (26.0, 2.0, 13.5))  # lower lid 2.4 px off, iris 4 px off, radius +12%
    got = EyeRefiner().refine(rgb, start, 0)
    up_err, low_err = margin_error(got, 0.17, 0.15, W)
    assert up_err < 1.0 and low_err < 1.0, (up_err, low_err)
    centre = got.iris_centre - np.array([40.0 + truth[0], 60.0 + truth[1]])
    assert np.hypot(*centre) < 1.0, centre
    assert abs(got.iris_radius - truth[2]) < 0.1 * truth[2], got.iris_radius
    want = read_eye(outline_of(W, 0.17, 0.15, truth))
    have = read_eye(got)
    assert abs(have.mrd1 - want.mrd1) < 0.05 and abs(have.mrd2 - want.mrd2) < 0.05, (have, want)


def test_stream_radius_from_irises_in_the_middle_only():
    """A turned iris is an ellipse whose circle fit is too small: after frames with the iris
    in the middle (radius 12 px), twenty frames of the iris turned to 0.3 of the fissure and
    fitted smaller (drawn at 9.6 px) leave the stream's radius within 3% of 12, where a
    running mean over every good fit would have come most of the way to 9.6."""
    refiner = EyeRefiner()
    for seed in range(3):
        refiner.refine(draw_eye(W, 0.17, 0.15, (30.0, 2.0, 12.0), seed=seed), outline_of(W, 0.17, 0.15, (30.0, 2.0, 12.0)), 0)
    turned = (18.0, 2.0, 9.6)
    single = EyeRefiner().refine(draw_eye(W, 0.17, 0.15, turned), outline_of(W, 0.17, 0.15, turned), 0)
    assert single.iris_radius < 11.0, single.iris_radius  # alone, the turned frame's own (small) fit
    for seed in range(20):
        got = refiner.refine(draw_eye(W, 0.17, 0.15, turned, seed=seed), outline_of(W, 0.17, 0.15, turned), 0)
    assert abs(got.iris_radius - 12.0) < 0.03 * 12.0, got.iris_radius


def test_margins_at_the_foot_of_the_shaded_step():
    """On a large eye (W = 120 px) the lids' shade on the sclera puts the steepest point of
    each lid's step 1-1.4 px inside the eye; the margins found on the sclera's columns are
    within 0.01 W of the drawn ones."""
    width, origin = 120.0, (50.0, 80.0)
    truth = (30.0, 2.0, 24.0)  # iris towards the lateral corner: sclera on the medial half
    rgb = draw_eye(width, 0.17, 0.15, truth, size=(160, 220), origin=origin)
    got = EyeRefiner().refine(rgb, outline_of(width, 0.17, 0.15, truth, origin=origin), 0)
    for pts, drawn in ((got.upper, lambda t: -lid(t, 0.17, width, 0.3)), (got.lower, lambda t: lid(t, 0.15, width))):
        t = (pts[:, 0] - origin[0]) / width
        sclera = t > (truth[0] + 1.5 * truth[2]) / width
        err = pts[sclera, 1] - origin[1] - drawn(t[sclera])
        assert sclera.sum() >= 3 and np.all(np.abs(err) < 0.01 * width), err


def test_lower_margin_under_a_light_iris_is_its_dark_line():
    """Under a light iris the lower margin shows as a dark line between iris and lid; the
    margin is that line (within 1 px of the drawn margin at its top), not the line's lower
    edge against the lid skin, the strongest step there."""
    truth = (30.0, 2.0, 12.0)
    rgb = draw_eye(W, 0.17, 0.15, truth, iris_colour=(125, 135, 145), lower_margin=(70, 45, 40))
    got = EyeRefiner().refine(rgb, outline_of(W, 0.17, 0.15, truth), 0)
    t = (got.lower[:, 0] - 40.0) / W
    on_iris = np.abs(t * W - truth[0]) < 0.75 * truth[2]
    err = got.lower[on_iris, 1] - 60.0 - lid(t[on_iris], 0.15, W)
    assert on_iris.sum() >= 3 and np.all(np.abs(err) < 1.0), err


def test_lower_margin_under_the_iris_is_the_top_of_the_margin_strip():
    """Under the iris the lower lid's margin strip, brighter than the iris and darker than
    the skin, makes two steps, the lower (strip to skin) the stronger here; the margin is
    the upper one (within 0.01 W of the drawn margin), where the strip begins."""
    width, origin = 60.0, (40.0, 60.0)
    truth = (30.0, 2.0, 12.0)
    rgb = draw_eye(width, 0.17, 0.15, truth, iris_colour=(60, 60, 60), lower_margin=(110, 100, 95), strip=0.07)
    got = EyeRefiner().refine(rgb, outline_of(width, 0.17, 0.15, truth, origin=origin), 0)
    t = (got.lower[:, 0] - origin[0]) / width
    on_iris = np.abs(t * width - truth[0]) < 0.75 * truth[2]
    err = got.lower[on_iris, 1] - origin[1] - lid(t[on_iris], 0.15, width)
    assert on_iris.sum() >= 3 and np.all(np.abs(err) < 0.01 * width), err


def test_shut_eye_left_as_a_slit_is_closed():
    rgb = draw_eye(W, 0.0, 0.0, None)  # lids meet: skin and the lash line only
    start = outline_of(W, 0.05, 0.05, (30.0, 0.0, 12.0))  # the tracker's slit: 0.1 W open
    assert not read_eye(start).shut
    got = EyeRefiner().refine(rgb, start, 0)
    assert read_eye(got).shut, read_eye(got)


def test_a_slit_beside_an_open_eye_is_narrowed_unless_the_tracker_sees_it_nearly_shut():
    """Blinks shut both eyes: a slit whose lids meet while the other eye is tracked clearly
    open keeps the tracker's opening (a narrowed eye with a dark iris filling it looks the
    same to the edge search), but a wink the tracker itself reads nearly shut closes."""
    truth = (30.0, 2.0, 12.0)
    open_rgb, open_start = draw_eye(W, 0.17, 0.15, truth), outline_of(W, 0.17, 0.15, truth)
    slit_rgb = draw_eye(W, 0.0, 0.0, None)
    for eye in (0, 1):  # the right eye sees the left's opening of the last frame, the left this frame's
        other = 1 - eye
        for start, shut in ((outline_of(W, 0.05, 0.05, (30.0, 0.0, 12.0)), False),
                            (outline_of(W, 0.015, 0.015, (30.0, 0.0, 12.0)), True)):
            refiner = EyeRefiner()
            refiner.refine(slit_rgb, start, eye)  # last frame: this eye as now, the other eye open
            refiner.refine(open_rgb, open_start, other)
            got = refiner.refine(slit_rgb, start, eye)
            assert read_eye(got).shut == shut, (eye, read_eye(start).opening, read_eye(got))
        # both eyes slits (a blink): shut even though the tracker leaves 0.1 W open
        refiner = EyeRefiner()
        slit = outline_of(W, 0.05, 0.05, (30.0, 0.0, 12.0))
        refiner.refine(slit_rgb, slit, other)
        assert read_eye(refiner.refine(slit_rgb, slit, eye)).shut


def test_a_blink_the_tracker_reads_open_in_one_eye_is_shut_in_both():
    """Lids that meet in both eyes while the tracker reads one of them a slit are a blink,
    shut in both, although the tracker reads the other at 0.2 of the width (p08's low
    resolution blinks); if it reads neither a slit (0.20 and 0.15: half-shut eyes whose
    dark irises fill the slits, p08 frame 200 as labelled) both keep its outlines."""
    slit_rgb = draw_eye(W, 0.0, 0.0, None)
    iris = (30.0, 0.0, 12.0)
    for other, shut in ((0.015, True), (0.075, False)):
        got = EyeRefiner().refine_pair(slit_rgb, outline_of(W, 0.10, 0.10, iris), outline_of(W, other, other, iris))
        assert [read_eye(o).shut for o in got] == [shut, shut], [read_eye(o) for o in got]
        # each eye alone, as before the pair was seen together: the tracker's 0.2 stands
        assert not read_eye(EyeRefiner().refine(slit_rgb, outline_of(W, 0.10, 0.10, iris), 0)).shut


def test_retracted_lid_goes_up_to_the_real_margin():
    truth = (30.0, 3.0, 12.0)
    rgb = draw_eye(W, 0.27, 0.17, truth)  # sclera between the upper lid and the iris
    want = read_eye(outline_of(W, 0.27, 0.17, truth))
    assert want.sclera_above
    # the tracker's lid rests on the top of the iris
    start = outline_of(W, (truth[2] - truth[1]) / W, 0.17, truth)
    assert not read_eye(start).sclera_above
    got = EyeRefiner().refine(rgb, start, 0)
    have = read_eye(got)
    assert abs(have.mrd1 - want.mrd1) < 0.05, (have.mrd1, want.mrd1)
    assert have.sclera_above


def test_iris_deep_in_the_corner_is_found_where_drawn():
    truth = (47.0, 1.0, 12.0)  # 0.78 of the way to the medial (image-right) corner
    rgb = draw_eye(W, 0.17, 0.15, truth)
    want = read_eye(outline_of(W, 0.17, 0.15, truth))
    start = outline_of(W, 0.17, 0.15, (41.0, 1.0, 12.0))  # pulled 0.1 W toward the middle
    got = EyeRefiner().refine(rgb, start, 0)
    assert abs(read_eye(got).place_h - want.place_h) < 0.03, (read_eye(got).place_h, want.place_h)


def test_lid_over_a_turned_iris_stays_at_its_peak():
    """Turned into the medial corner, the iris carries the lid's peak with it (the lid
    drapes over the cornea), and the lid covers the iris's top; the tracker's lid keeps
    the shape of a lid over a centred iris and falls toward the corner over the iris. The
    refined lid over the iris reads MRD1 as drawn, not as the tracker's lower lid."""
    truth, skew = (48.0, 1.0, 12.0), 2.0
    rgb = draw_eye(W, 0.17, 0.15, truth, up_skew=skew)
    want = read_eye(outline_of(W, 0.17, 0.15, truth, up_skew=skew))
    start = outline_of(W, 0.17, 0.15, truth)
    assert read_eye(start).mrd1 < want.mrd1 - 0.1  # the tracker's lid, too low over the iris
    got = read_eye(EyeRefiner().refine(rgb, start, 0))
    assert abs(got.mrd1 - want.mrd1) < 0.05, (got.mrd1, want.mrd1, read_eye(start).mrd1)


def test_corner_on_the_iris_moves_out_of_it():
    """The iris turned into the medial corner, the tracker's medial corner on the iris
    (10 px short of the drawn one) and its iris pulled toward the middle: the corner
    comes out to the iris's edge and the upper lid over the iris reads as drawn."""
    truth = (52.0, 1.0, 12.0)
    rgb = draw_eye(W, 0.17, 0.15, truth)
    want = read_eye(outline_of(W, 0.17, 0.15, truth))
    short = 50.0
    start = outline_of(short, 0.17 * W / short, 0.15 * W / short, (44.0, 1.0, 12.0))
    got = EyeRefiner().refine(rgb, start, 0)
    assert abs(got.corners[1][0] - (40.0 + W)) < 2.0, got.corners
    assert np.allclose(got.corners[0], start.corners[0])
    assert abs(read_eye(got).mrd1 - want.mrd1) < 0.05, (read_eye(got).mrd1, want.mrd1, read_eye(start).mrd1)


def test_single_frame_and_stream_state():
    truth = (30.0, 2.0, 12.0)
    rgb = draw_eye(W, 0.17, 0.15, truth)
    start = outline_of(W, 0.17, 0.15, truth)
    refiner = EyeRefiner()
    for _ in range(5):
        refiner.refine(rgb, start, 1)
    # a later shut frame keeps the stream's radius, the other eye's state is untouched
    shut = refiner.refine(draw_eye(W, 0.0, 0.0, None), outline_of(W, 0.05, 0.05, (30.0, 0.0, 16.0)), 1)
    assert abs(shut.iris_radius - truth[2]) < 0.1 * truth[2]
    # a kept tracker outline (lids meet on an eye it sees open) takes the stream's radius too
    narrowed = outline_of(W, 0.12, 0.12, (30.0, 0.0, 8.0))
    kept = refiner.refine(draw_eye(W, 0.0, 0.0, None), narrowed, 1)
    assert np.allclose(kept.upper, narrowed.upper) and abs(kept.iris_radius - truth[2]) < 0.1 * truth[2]
    refiner.reset()
    fresh = refiner.refine(draw_eye(W, 0.0, 0.0, None), outline_of(W, 0.05, 0.05, (30.0, 0.0, 16.0)), 1)
    assert fresh.iris_radius == 16.0


P04 = DATA / "videos" / "p04_eye_closure_look_down.mp4"


@pytest.mark.skipif(not P04.exists(), reason="needs ../shared/data")
def test_real_shut_and_open_frames():
    """p04's slow closure: frame 229's left eye is shut (the tracker leaves ~0.1 of the
    width open), frame 0's eyes are open; p02's wink (frame 150: right eye shut); p05's
    narrowed left eye (frames 0, 113: open, the dark iris and a catch light fill the slit,
    no sclera shows beside it); p06's half-shut right eye (frame 114, labelled open)."""
    from dmask_rt.track.eye_outline import tracked_outlines
    from dmask_rt.track.tracker import FaceTracker

    p02, p05 = DATA / "videos" / "p02_gaze_wink.mp4", DATA / "videos" / "p05_studio_mouth.mp4"
    cases = [(P04, 229, 1, True), (P04, 0, 1, False), (P04, 0, 0, False),
             (p02, 150, 0, True), (p02, 300, 1, False), (p05, 0, 1, False), (p05, 113, 1, False),
             (DATA / "videos" / "p06_talking_blinks.mp4", 114, 0, False)]
    tracker = FaceTracker()
    for path, index, eye, shut in cases:
        rgb = next(f for i, f in enumerate(video_frames(path)) if i == index)
        tracker.reset()
        landmarks = tracker.track(rgb)
        assert landmarks is not None
        got = EyeRefiner().refine(rgb, tracked_outlines(landmarks)[eye], eye)
        assert read_eye(got).shut == shut, (path.name, index, eye, read_eye(got))
        if shut:
            assert read_eye(got).opening < SHUT_OPENING


@pytest.mark.skipif(not P04.exists(), reason="needs ../shared/data")
def test_real_low_resolution_blinks_shut_both_eyes():
    """p08 (256x256, a face of 160 px): in its blinks (frames 125-126 and 198-199) the
    tracker reads the right eye at 0.19-0.21 of the width open, its open eyes at about 0.31;
    through the tracker both eyes read shut there, and open in the frames around, frame
    200 (labelled half-shut) included."""
    from dmask_rt.track.tracker import FaceTracker

    tracker = FaceTracker()
    shut = {}
    for i, rgb in enumerate(video_frames(DATA / "videos" / "p08_low_res_256.mp4")):
        landmarks = tracker.track(rgb)
        if i in (123, 125, 126, 129, 196, 198, 199, 200):
            assert landmarks is not None
            shut[i] = [read_eye(o).shut for o in landmarks.eyes]
        if i == 200:
            break
    assert shut == {123: [False, False], 125: [True, True], 126: [True, True], 129: [False, False],
                    196: [False, False], 198: [True, True], 199: [True, True], 200: [False, False]}


def test_limbus_edges_skip_a_catch_light():
    """A bright reflection inside the iris is a dark-to-bright step too, and a stronger one
    than the limbus on a dim sclera; the limbus edge is the one with sclera beyond it."""
    import cv2

    from dmask_rt.track.limbus import N_RAYS, ray_edges

    r, centre = 12.0, (60.0, 40.0)
    ang = 2.0 * np.pi * (8 + 0.5) / N_RAYS  # ray 8 (pointing down) crosses the reflection
    ys, xs = np.mgrid[0 : 80 * SS, 0 : 120 * SS]
    x, y = (xs + 0.5) / SS - 0.5, (ys + 0.5) / SS - 0.5
    img = np.empty(x.shape + (3,))
    img[:] = (150, 145, 140)  # a dim, shaded sclera
    img[(x - centre[0]) ** 2 + (y - centre[1]) ** 2 < r * r] = (30, 20, 18)
    spot = (centre[0] + 0.5 * r * np.cos(ang), centre[1] + 0.5 * r * np.sin(ang))
    img[(x - spot[0]) ** 2 + (y - spot[1]) ** 2 < (0.12 * r) ** 2] = (255, 255, 255)
    rgb = np.clip(cv2.resize(img, (120, 80), interpolation=cv2.INTER_AREA), 0, 255).astype(np.uint8)

    frame = np.array([30.0, 40.0, 1.0, 0.0])  # eye frame: origin (30, 40), axis along x
    wide = np.array([-10.0, 0.0, 0.0])  # lids far away: every ray's edge counts
    pts, wts = np.empty((N_RAYS, 2)), np.empty(N_RAYS)
    n = ray_edges(rgb, frame, 60.0, 30.0, 0.0, r, wide, -wide, 0.0, pts, wts)
    assert n == N_RAYS
    radii = np.hypot(pts[:n, 0] - 30.0, pts[:n, 1])
    assert np.all(np.abs(radii - r) < 1.0), radii
