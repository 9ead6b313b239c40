"""Reading the avatar's eyes from its pixels, to confirm the geometry it reports.

`dmask eval` grades the mask by the eye outlines the avatar draws (`model/drawn_eye.py`).
That is only honest if the frame's pixels show that geometry, so this reads each eye
back from the rendered frame alone, using nothing of the drawn outline but where to
look (the region around it) and, for the place readings, its corners (the opening
tapers to nothing there, so pixels cannot place a corner to a pixel).

Classes: every pixel of the eye region is given the nearest of the avatar's fixed
colours (`render/palette.py`) under a brightness scale, since lighting, the lids'
shadow on the eyeball and the lid shading only scale a colour:

    class(c) = argmin_p min_{k in [k_lo, k_hi], w in [0, w_hi]} |c - k p - w (1, 1, 1)|

(RGB, 0..255) with the ranges per colour (`_CLASSES`: what its lighting, shading and
highlight can do to it; skin-side colours never get as dark as a shadowed eyeball, and
only the eyeball takes a strong highlight). Eyeball = sclera, iris or pupil, plus the
corneal highlight where it meets the iris (GLINT_*), plus whatever eyeball pixels
enclose.

Read per eye, in the eye frame of `track/eye_outline.py` (s along the corners, h down):

    eyeball pixels   how many of the region's pixels are sclera, iris or pupil, not
                     counting colours a skin-side class explains as well (AMBIGUOUS_*):
                     a shut eye must show none, an open one some
    top(s), bottom(s)  along the line s = const, where it enters the first and leaves
                     the last eyeball pixel (sampled every 0.25 px): the visible opening
    limbus           the boundary between the iris disc (iris and pupil pixels, holes
                     such as the corneal highlight filled, largest blob, with its rim)
                     and sclera pixels, one point per such 4-neighbour pair at the
                     pair's midpoint; a circle fitted to them (trimmed least squares)
                     gives the iris centre, an ellipse through the same points the
                     limbus radius (`_limbus_fit`). Fewer than MIN_LIMBUS_POINTS points
                     (the lids hide the limbus): no centre; limbus points spanning less
                     than SIDES_ONLY radii across the eye (only its sides show): the
                     centre along the eye only (across it, the drawn one); limbus on one
                     side of the centre only (the iris deep in a corner): no centre. A
                     turned eye's limbus is an
                     ellipse (its short axis r cos(angle)): by symmetry the circle's
                     centre stays near the ellipse's while both sides of the limbus
                     show (the residuals below include this)
    readings         MRD1 = (h_c - top(s_c)) / D, MRD2 = (bottom(s_c) - h_c) / D with
                     (s_c, h_c) the pixel iris centre and D its diameter; the lids at
                     the fissure's middle -top(W/2) / D and bottom(W/2) / D; place and
                     opening as `read_eye` defines them; shut = no eyeball pixel

Confirmation of one eye: shut as drawn (`read_eye(drawn).shut`) exactly when it shows
no eyeball pixel, and for an open eye the visible opening's top and bottom at the drawn
iris centre's s within TOLERANCE_PX of the drawn margins, and the limbus centre (when
seen) within TOLERANCE_PX of the drawn iris centre. A frame is confirmed when both eyes
are. A drawn eye the face hides (a head turned far) is rightly not confirmed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from ..render import palette
from ..track.eye_outline import EyeOutline, EyeReadings, eye_frame, margin_profile, read_eye

#: Half a pixel of sampling, and about one pixel of colour ambiguity at the opening's
#: edge: where the lids' shadow, the antialiased iris rim and the lash-tinted skin meet,
#: a dark pixel can be either side's colour (measured on p02 and p09: the top, bottom
#: and centre residuals are centred within 0.25 px, 90% within 1 px).
TOLERANCE_PX = 1.5
MIN_LIMBUS_POINTS = 8
TRIM_PX = 1.0
#: Limbus points spanning less than this many radii across the eye show only its sides,
#: near-vertical arcs whose bend (under 0.35 r) is a pixel or two: they place the iris
#: along the eye but not across it.
SIDES_ONLY = 1.5
#: The region read around a drawn eye: its outline's box grown by this share of the
#: fissure width plus a few pixels, so a lid drawn off its place is still inside.
REGION_GROW = 0.25
REGION_PAD_PX = 4
_STEP_PX = 0.25

#: Each class: its palette colour, the brightness scales [k_lo, k_hi] and the white
#: highlight [0, w_hi] it can take. The eyeball is lit at EYE_AMBIENT and up, the lids'
#: shadow takes it down to 0.2 and the iris's limbal ring to 0.45 of that, and the
#: cornea's highlight adds up to 0.6 white; skin-side colours are lit at FACE_AMBIENT
#: (0.35) and up with a faint highlight (FACE_SPECULAR); the socket fill is flat but
#: shadowed; the background is flat.
_CLASSES = (
    ("sclera", palette.SCLERA_RGB, 0.1, 1.0, 153.0), ("iris", palette.IRIS_RGB, 0.04, 1.0, 13.0),
    ("pupil", palette.PUPIL_RGB, 0.1, 1.0, 153.0), ("socket", palette.SOCKET_RGB, 0.15, 1.0, 0.0),
    ("caruncle", palette.CARUNCLE_RGB, 0.3, 1.0, 13.0), ("skin", palette.SKIN_RGB, 0.3, 1.0, 13.0),
    ("lash", palette.LASH_RGB, 0.3, 1.0, 13.0), ("lash_line", palette.LASH_LINE_RGB, 0.3, 1.0, 13.0),
    ("brow", palette.BROW_RGB, 0.3, 1.0, 13.0), ("mouth", palette.MOUTH_RGB, 0.3, 1.0, 13.0),
    ("background", palette.BACKGROUND_RGB, 0.98, 1.0, 0.0),
)
CLASSES = tuple(c[0] for c in _CLASSES)
_COLOURS = np.array([c[1] for c in _CLASSES], float)
_K = np.array([c[2:4] for c in _CLASSES])
_W = np.array([(0.0, c[4]) for c in _CLASSES])
SCLERA, IRIS, PUPIL = 0, 1, 2
#: The cornea's highlight over the iris: iris plus up to this much white. Not a class of
#: its own (dark skin is iris plus white too): a pixel of this colour (within
#: GLINT_RESIDUAL, 8-bit rounding) counts as eyeball only within GLINT_REACH_PX of iris
#: or pupil pixels, through such pixels, and above the iris's middle.
GLINT_WHITE = 60.0
GLINT_RESIDUAL = 2.0
GLINT_REACH_PX = 2
#: A colour that an eyeball class and a skin-side class both explain within 8-bit
#: rounding (one unit per channel, squared) is ambiguous: dark shades of the brown iris
#: with a faint highlight and the lash line faded into the skin meet there (seen: a
#: lash line's end, (56, 41, 34), at 0.8 of a unit from an iris shade and 1.0 from a brow
#: shade). Such pixels still shape the opening but are not counted as eyeball pixels, so
#: they cannot make a shut eye read open.
AMBIGUOUS_RESIDUAL = 3.0
_GLINT = (np.array([palette.IRIS_RGB], float), np.array([[0.04, 1.0]]), np.array([[0.0, GLINT_WHITE]]))


def _residuals(c: np.ndarray, colours: np.ndarray = _COLOURS, k_range: np.ndarray = _K,
               w_range: np.ndarray = _W) -> np.ndarray:
    """(n, m) min over the allowed (k, w) of |c - k p - w (1, 1, 1)|^2 for the m colours p.

    The unconstrained least-squares (k, w) where it is allowed, else the best point on
    the box's edges (each edge a one-dimensional least squares, clipped)."""
    _K, _W = k_range, w_range
    p = colours[None]                                     # (1, m, 3)
    c = c[:, None, :]                                     # (n, 1, 3)
    pp, p1 = np.sum(p * p, -1), np.sum(p, -1)             # (1, m)
    cp, c1 = np.sum(c * p, -1), np.sum(c, -1)             # (n, m), (n, 1)
    det = 3 * pp - p1 * p1
    k = (3 * cp - p1 * c1) / det
    w = (pp * c1 - p1 * cp) / det
    candidates = [(k, w)]
    for w_edge in (_W[:, 0], _W[:, 1]):
        candidates.append((np.clip((cp - w_edge * p1) / pp, _K[:, 0], _K[:, 1]), np.broadcast_to(w_edge, k.shape)))
    for k_edge in (_K[:, 0], _K[:, 1]):
        candidates.append((np.broadcast_to(k_edge, k.shape), np.clip((c1 - k_edge * p1) / 3, _W[:, 0], _W[:, 1])))
    best = np.full(k.shape, np.inf)
    for kk, ww in candidates:
        ok = (kk >= _K[:, 0] - 1e-9) & (kk <= _K[:, 1] + 1e-9) & (ww >= _W[:, 0] - 1e-9) & (ww <= _W[:, 1] + 1e-9)
        r = np.sum((c - kk[..., None] * p - ww[..., None]) ** 2, -1)
        best = np.where(ok & (r < best), r, best)
    return best


#: Packed 24-bit colour -> (class index, whether it is the iris's highlight colour,
#: whether it is ambiguous). The avatar's colours repeat from frame to frame, so each is
#: worked out once.
_KIND_OF: dict[int, tuple[int, bool, bool]] = {}
_CACHE_LIMIT = 1_000_000


def _lookup(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(class index, glint colour, ambiguous colour: AMBIGUOUS_RESIDUAL) of each pixel of
    an (h, w, 3) uint8 image."""
    packed = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    colours, inverse = np.unique(packed.ravel(), return_inverse=True)
    if len(_KIND_OF) > _CACHE_LIMIT:  # about 18 000 colours after p02's 536 frames: a bound, not a case
        _KIND_OF.clear()
    new = np.array([c for c in colours.tolist() if c not in _KIND_OF], np.int64)
    if len(new):
        c = np.column_stack([new >> 16, (new >> 8) & 255, new & 255]).astype(float)
        r = _residuals(c)
        ambiguous = (r[:, : PUPIL + 1].min(axis=1) <= AMBIGUOUS_RESIDUAL) & (r[:, PUPIL + 1:].min(axis=1) <= AMBIGUOUS_RESIDUAL)
        for key, cls, glint, amb in zip(new.tolist(), np.argmin(r, axis=1).tolist(),
                                        (_residuals(c, *_GLINT)[:, 0] < GLINT_RESIDUAL).tolist(), ambiguous.tolist()):
            _KIND_OF[key] = (cls, glint, amb)
    kinds = np.array([_KIND_OF[c] for c in colours.tolist()], np.int64)[inverse].reshape(*rgb.shape[:2], 3)
    return kinds[..., 0], kinds[..., 1].astype(bool), kinds[..., 2].astype(bool)


def classify(rgb: np.ndarray) -> np.ndarray:
    """(h, w) index into CLASSES of each pixel of an (h, w, 3) uint8 image (module docstring)."""
    return _lookup(rgb)[0]


@dataclass(frozen=True)
class PixelEye:
    """One eye as the avatar's pixels show it (module docstring); positions in image pixels."""

    eyeball_px: int
    iris_centre: np.ndarray | None   # limbus circle's centre, None if too little limbus shows
    iris_radius: float | None        # its radius
    top: float | None                # visible opening at the drawn iris centre's s, eye-frame h
    bottom: float | None
    readings: EyeReadings            # MRD1/MRD2/place/opening as the pixels show them (NaN when shut)
    errors_px: tuple[float, float, float]  # top, bottom, centre minus drawn (NaN where not read)
    confirmed: bool
    reasons: tuple[str, ...]         # why not confirmed (empty when confirmed)


def _region(outline: EyeOutline, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    pts = np.vstack([outline.corners, outline.upper, outline.lower,
                     outline.iris_centre[None] + outline.iris_radius * np.array([[-1, -1], [1, 1]])])
    width = float(np.linalg.norm(outline.corners[1] - outline.corners[0]))
    grow = REGION_GROW * width + REGION_PAD_PX
    x0, y0 = np.floor(pts.min(axis=0) - grow).astype(int)
    x1, y1 = np.ceil(pts.max(axis=0) + grow).astype(int)
    return max(x0, 0), max(y0, 0), min(x1, shape[1]), min(y1, shape[0])


def _eyeball(glint: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Eyeball pixels: sclera, iris and pupil, the corneal highlight next to the iris
    (GLINT_*), and whatever they enclose (the iris's antialiased rim with the pupil can
    take a skin or lash colour)."""
    eyeball = labels <= PUPIL
    if labels.size:
        glint = glint.copy()
        core = (labels == IRIS) | (labels == PUPIL)
        if core.any():
            # The key light is above the camera, so the highlight is above the iris's middle;
            # below it, the lower lid's lash-tinted skin has the same colours.
            glint[int(np.nonzero(core)[0].mean()):] = False
        eyeball |= ndimage.binary_dilation(core, iterations=GLINT_REACH_PX, mask=core | glint)
    return ndimage.binary_fill_holes(eyeball)


def _limbus(labels: np.ndarray) -> np.ndarray:
    """(k, 2) region pixel coordinates (x, y) of the iris disc's boundary with the sclera.

    The disc: the largest blob of iris and pupil pixels, holes filled, and the pixels
    around it that are not sclera (its antialiased rim, mixed with the white, takes
    other colours)."""
    core = ndimage.binary_fill_holes((labels == IRIS) | (labels == PUPIL))
    blobs, n = ndimage.label(core)
    if n == 0:
        return np.empty((0, 2))
    core = blobs == 1 + int(np.argmax(ndimage.sum(core, blobs, range(1, n + 1))))
    sclera = labels == SCLERA
    disc = core | (ndimage.binary_dilation(core, np.ones((3, 3), bool)) & ~sclera)
    points = []
    for dy, dx in ((0, 1), (1, 0)):
        a, b = disc[: disc.shape[0] - dy, : disc.shape[1] - dx], disc[dy:, dx:]
        sa, sb = sclera[: disc.shape[0] - dy, : disc.shape[1] - dx], sclera[dy:, dx:]
        ys, xs = np.nonzero((a & sb) | (b & sa))
        points.append(np.column_stack([xs + dx / 2, ys + dy / 2]))
    return np.concatenate(points)


def _limbus_fit(points: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Iris (centre, radius) from (k, 2) limbus points; None when too few points remain.

    The centre: a least-squares circle, trimmed: the algebraic fit x^2 + y^2 = 2 a x +
    2 b y + c, refitted without the points more than TRIM_PX off it (boundaries of the
    corneal highlight where it meets a lid, lid pixels at the iris's corners). The
    radius: a turned eye's limbus is an ellipse whose long semi-axis is the limbus
    radius, so that of an ellipse through the circle's points (cv2.fitEllipse) where it
    is well posed (centred within TRIM_PX of the circle, at most 1.3 times its radius),
    else the circle's (on rendered sweeps: 0.91-1.03 of the drawn radius, 10th-90th
    percentile, against 0.86-0.98 for the circle alone)."""
    keep = np.ones(len(points), bool)
    for _ in range(4):
        if keep.sum() < MIN_LIMBUS_POINTS:
            return None
        x, y = points[keep, 0], points[keep, 1]
        (a, b, c), *_ = np.linalg.lstsq(np.column_stack([2 * x, 2 * y, np.ones_like(x)]), x * x + y * y, rcond=None)
        r = math.sqrt(max(c + a * a + b * b, 1e-9))
        new = np.abs(np.hypot(points[:, 0] - a, points[:, 1] - b) - r) <= TRIM_PX
        if np.array_equal(new, keep):
            break
        keep = new
    if keep.sum() < MIN_LIMBUS_POINTS:
        return None
    (ex, ey), axes, _ = cv2.fitEllipse(points[keep].astype(np.float32))
    long_axis = max(axes) / 2
    if math.hypot(ex - a, ey - b) <= TRIM_PX and long_axis <= 1.3 * r:
        r = long_axis
    return np.array([a, b]), float(r)


class _Lines:
    """Eyeball samples along lines s = const of one eye's frame."""

    def __init__(self, eyeball: np.ndarray, offset: np.ndarray, corners: np.ndarray, reach: float) -> None:
        self.eyeball, self.offset = eyeball, offset
        self.origin, self.a, self.n, self.width = eye_frame(corners)
        self.h = np.arange(-reach, reach + _STEP_PX / 2, _STEP_PX)

    def span(self, s: float) -> tuple[float, float] | None:
        """(top, bottom) h of the eyeball pixels met along the line at s, None if none."""
        pts = self.origin + s * self.a + self.h[:, None] * self.n - self.offset
        ix, iy = np.floor(pts[:, 0]).astype(int), np.floor(pts[:, 1]).astype(int)
        inside = (ix >= 0) & (iy >= 0) & (ix < self.eyeball.shape[1]) & (iy < self.eyeball.shape[0])
        hit = np.zeros(len(pts), bool)
        hit[inside] = self.eyeball[iy[inside], ix[inside]]
        if not hit.any():
            return None
        idx = np.nonzero(hit)[0]
        return float(self.h[idx[0]]) - _STEP_PX / 2, float(self.h[idx[-1]]) + _STEP_PX / 2


def read_pixels(frame: np.ndarray, drawn: EyeOutline) -> PixelEye:
    """One eye of an avatar frame read from its pixels and checked against `drawn` (module docstring)."""
    x0, y0, x1, y1 = _region(drawn, frame.shape)
    empty = np.zeros((0, 0), bool)
    labels, glint, ambiguous = _lookup(frame[y0:y1, x0:x1]) if x1 > x0 and y1 > y0 else (empty.astype(int), empty, empty)
    eyeball = _eyeball(glint, labels)
    offset = np.array([x0, y0], float)
    drawn_reading = read_eye(drawn)
    count = int(_eyeball(glint, np.where(ambiguous, len(CLASSES), labels)).sum()) if ambiguous.any() else int(eyeball.sum())
    reasons: list[str] = []
    if drawn_reading.shut != (count == 0):
        reasons.append("shut drawn, eyeball pixels seen" if drawn_reading.shut else "open drawn, no eyeball pixel")
    limbus = _limbus(labels) if count else np.empty((0, 2))
    centre = radius = None
    errors = [np.nan, np.nan, np.nan]
    origin, a, n, width = eye_frame(drawn.corners)
    if len(limbus) >= MIN_LIMBUS_POINTS:
        fit = _limbus_fit(limbus)
        if fit is not None:
            # Pixel (i, j) covers [j, j+1) x [i, i+1): its coordinates are its centre's minus 0.5.
            centre, radius = fit[0] + offset + 0.5, fit[1]
            along = (limbus + offset + 0.5 - centre) @ a
            if along.min() > -radius / 2 or along.max() < radius / 2:
                # One side of the limbus only (the iris deep in a corner, foreshortened):
                # an arc of an ellipse, which places no centre.
                centre = radius = None
    if centre is not None:
        miss = centre - drawn.iris_centre
        if np.ptp((limbus + offset + 0.5 - origin) @ n) < SIDES_ONLY * radius:
            # Only the limbus's sides show (the lids cover its top and bottom): they
            # place the iris along the eye, not across it, so across it stays drawn.
            centre = centre - (miss @ n) * n
            miss = (miss @ a) * a
        errors[2] = float(np.linalg.norm(miss))
        if errors[2] > TOLERANCE_PX:
            reasons.append("iris centre")
    top = bottom = None
    readings = EyeReadings(np.nan, np.nan, np.nan, np.nan, 0.0, True)
    if count:
        lines = _Lines(eyeball, offset, drawn.corners, reach=float(max(labels.shape)))
        s_drawn = float((drawn.iris_centre - origin) @ a)
        span = lines.span(s_drawn)
        if span is not None:
            top, bottom = span
            su, hu = margin_profile(drawn, "upper")
            sl, hl = margin_profile(drawn, "lower")
            errors[:2] = top - float(np.interp(s_drawn, su, hu)), bottom - float(np.interp(s_drawn, sl, hl))
            if abs(errors[0]) > TOLERANCE_PX:
                reasons.append("upper lid")
            if abs(errors[1]) > TOLERANCE_PX:
                reasons.append("lower lid")
        elif not drawn_reading.shut:
            reasons.append("no eyeball at the iris centre")
        readings = _pixel_readings(lines, drawn, centre, radius)
    return PixelEye(count, centre, radius, top, bottom, readings, tuple(errors), not reasons, tuple(reasons))


def _pixel_readings(lines: _Lines, drawn: EyeOutline, centre: np.ndarray | None, radius: float | None) -> EyeReadings:
    """MRD1/MRD2/place/opening with the pixel iris (the drawn one where the limbus is hidden)."""
    origin, a, n, width = lines.origin, lines.a, lines.n, lines.width
    c = drawn.iris_centre if centre is None else centre
    diameter = 2 * (drawn.iris_radius if radius is None else radius)
    s_c, h_c = float((c - origin) @ a), float((c - origin) @ n)
    lat, med = (np.asarray(drawn.corners, float) - origin) @ a
    span, middle = lines.span(s_c), lines.span(width / 2)
    gaps = [g[1] - g[0] for g in map(lines.span, np.linspace(0.0, width, 21)) if g is not None]
    return EyeReadings(
        mrd1=(h_c - span[0]) / diameter if span else np.nan,
        mrd2=(span[1] - h_c) / diameter if span else np.nan,
        place_h=(s_c - lat) / (med - lat),
        place_v=h_c / width,
        opening=max(gaps, default=0.0) / width,
        shut=False,
        upper_mid=-middle[0] / diameter if middle else np.nan,
        lower_mid=middle[1] / diameter if middle else np.nan,
    )


def read_frame(frame: np.ndarray, drawn: tuple[EyeOutline, EyeOutline]) -> tuple[PixelEye, PixelEye]:
    """(right, left) eyes of one avatar frame read from its pixels."""
    return read_pixels(frame, drawn[0]), read_pixels(frame, drawn[1])
