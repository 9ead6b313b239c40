"""Known-answer tests of the avatar renderer on a synthetic face-like mesh.

The mesh is a tessellated half-ellipsoid "face" facing the camera, with two elliptic
eye openings and a mouth opening cut out (their rims are the rings of FaceTopology).
Needs an OpenGL context (EGL on Mesa llvmpipe works headless).

Timing (reported, not asserted), e.g.:
    .venv/bin/python -c "import tests.test_render as t; t.print_timing()"
"""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from scipy.spatial import Delaunay

from dmask_rt.model.camera import Camera
from dmask_rt.render import AvatarRenderer, EyeballPose, FaceTopology, placeholder_frame
from dmask_rt.render import palette
from dmask_rt.render.normals import VertexNormals

W, H = 640, 480
FACE_Z = 330.0                       # mm from the camera to the face's back rim
FACE_A, FACE_B, FACE_DEPTH = 80.0, 105.0, 60.0   # half-ellipsoid semi-axes (x, y) and depth
EYE_CENTERS = ((-32.0, -18.0), (32.0, -18.0))    # subject's right eye is on the image left
EYE_AXES = (14.0, 7.0)
MOUTH_CENTER, MOUTH_AXES = (0.0, 45.0), (22.0, 5.0)
BROW_Y = (-32.0, -38.0)                           # each brow's lower and upper edge
BROW_HALF_WIDTH = 14.0
EYEBALL_RADIUS = 12.0


def surface_z(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Depth of the half-ellipsoid face at (x, y): nearest to the camera at the centre."""
    r2 = np.clip(1.0 - (x / FACE_A) ** 2 - (y / FACE_B) ** 2, 0.0, None)
    return FACE_Z - FACE_DEPTH * np.sqrt(r2)


def ellipse_ring(center: tuple[float, float], axes: tuple[float, float], n: int) -> np.ndarray:
    """(n, 2) points in order around an ellipse (angles symmetric about the x axis)."""
    t = 2.0 * np.pi * np.arange(n) / n
    return np.stack([center[0] + axes[0] * np.cos(t), center[1] + axes[1] * np.sin(t)], axis=1)


def make_face(spacing: float = 6.0) -> tuple[np.ndarray, FaceTopology]:
    """(N, 3) float32 vertices and topology of the synthetic face with three holes (grid spacing in mm)."""
    rings = [ellipse_ring(c, EYE_AXES, 16) for c in EYE_CENTERS]
    rings.append(ellipse_ring(MOUTH_CENTER, MOUTH_AXES, 20))
    # Brows: per eye a lower and an upper edge of 5 points, lateral to medial.
    brows = []
    for cx, _ in EYE_CENTERS:
        xs = cx + np.sign(cx) * np.linspace(BROW_HALF_WIDTH, -BROW_HALF_WIDTH, 5)
        brows.extend(np.stack([xs, np.full(5, y)], axis=1) for y in BROW_Y)
    gx, gy = np.meshgrid(np.arange(-72.0, 72.1, spacing), np.arange(-96.0, 96.1, spacing))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
    # Keep grid points clear of the openings so Delaunay keeps every ring edge.
    keep = np.ones(len(grid), bool)
    for center, axes in [(c, EYE_AXES) for c in EYE_CENTERS] + [(MOUTH_CENTER, MOUTH_AXES)]:
        q = ((grid[:, 0] - center[0]) / axes[0]) ** 2 + ((grid[:, 1] - center[1]) / axes[1]) ** 2
        keep &= q > 1.6 ** 2
    for cx, _ in EYE_CENTERS:   # nothing between a brow's edges but the brow
        keep &= ~((np.abs(grid[:, 0] - cx) < BROW_HALF_WIDTH + 3.0) & (np.abs(grid[:, 1] - np.mean(BROW_Y)) < 6.0))
    xy = np.concatenate([grid[keep]] + rings + brows)
    ring_idx, start = [], int(keep.sum())
    for ring in rings + brows:
        ring_idx.append(np.arange(start, start + len(ring), dtype=np.int32))
        start += len(ring)
    tri = Delaunay(xy).simplices
    # The openings: triangles spanned by one ring alone.
    inside = np.zeros(len(tri), bool)
    for idx in ring_idx[:3]:
        inside |= np.isin(tri, idx).all(axis=1)
    tri = tri[~inside]
    vertices = np.column_stack([xy, surface_z(xy[:, 0], xy[:, 1])]).astype(np.float32)
    topology = FaceTopology(tri.astype(np.int32), np.stack(ring_idx[:2]), ring_idx[2], np.reshape(ring_idx[3:], (2, 2, 5)))
    return vertices, topology


def collapse_ring(vertices: np.ndarray, ring: np.ndarray, center_y: float) -> np.ndarray:
    """Copy of vertices with the ring flattened onto the horizontal line y = center_y (a closed lid)."""
    v = vertices.copy()
    v[ring, 1] = center_y
    v[ring, 2] = surface_z(v[ring, 0], v[ring, 1])
    return v


def eye_poses(rotations: tuple[np.ndarray, np.ndarray] = (np.eye(3), np.eye(3))) -> tuple[EyeballPose, EyeballPose]:
    """Eyeballs behind the openings, cornea apex 2 mm in front of the rim's surface."""
    poses = []
    for (x, y), rot in zip(EYE_CENTERS, rotations):
        z = float(surface_z(np.array(x), np.array(y))) + EYEBALL_RADIUS - 2.0
        poses.append(EyeballPose(np.array([x, y, z]), np.asarray(rot, float)))
    return tuple(poses)


def gaze_point(pose: EyeballPose) -> np.ndarray:
    """Camera-frame point where the gaze axis leaves the eyeball (the pupil centre)."""
    return pose.center + pose.rotation @ np.array([0.0, 0.0, -EYEBALL_RADIUS])


def yaw(angle_deg: float) -> np.ndarray:
    """Rotation about the camera's y axis (the gaze swings sideways)."""
    a = np.radians(angle_deg)
    return np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])


def is_background(img: np.ndarray) -> np.ndarray:
    return np.all(img == np.array(palette.BACKGROUND_RGB, np.uint8), axis=-1)


def is_pupil(img: np.ndarray) -> np.ndarray:
    """Near-black pixels: only the pupil is that dark (shaded skin keeps >= 35% of its tone,
    the iris >= 60% under the eyeball's light and the lid's shadow)."""
    return img.max(axis=-1) < 30


def is_iris_or_pupil(img: np.ndarray) -> np.ndarray:
    """Pupil pixels, or pixels of the iris colour under any shading (its green:red and
    blue:red ratios; skin, lashes, brows, sclera and the fills have other ratios)."""
    i = img.astype(float) + 1e-6
    r, g, b = palette.IRIS_RGB
    iris = (np.abs(i[..., 1] / i[..., 0] - g / r) < 0.06) & (np.abs(i[..., 2] / i[..., 0] - b / r) < 0.08) & (i[..., 0] > 20)
    return is_pupil(img) | iris


def is_sclera(img: np.ndarray) -> np.ndarray:
    """Nearly grey pixels, bright or in the lids' shadow (skin is a warmer tone, the background bluer)."""
    i = img.astype(int)
    return (i.min(axis=-1) > 90) & (i.max(axis=-1) - i.min(axis=-1) < 20)


def is_skin(img: np.ndarray) -> np.ndarray:
    """Pixels of the skin tone under any shading: red > green > blue in the palette's ratios."""
    i = img.astype(float) + 1e-6
    return (np.abs(i[..., 1] / i[..., 0] - palette.SKIN_RGB[1] / palette.SKIN_RGB[0]) < 0.06) & (
        np.abs(i[..., 2] / i[..., 0] - palette.SKIN_RGB[2] / palette.SKIN_RGB[0]) < 0.08
    )


@pytest.fixture(scope="module")
def face():
    return make_face()


@pytest.fixture(scope="module")
def renderer(face):
    with AvatarRenderer(W, H, face[1], eyeball_radius=EYEBALL_RADIUS) as r:
        yield r


@pytest.fixture(scope="module")
def camera():
    return Camera.for_image(W, H)


def test_output_shape_dtype_and_layout(renderer, face, camera):
    img = renderer.render(camera, face[0], eye_poses())
    assert img.shape == (H, W, 3)
    assert img.dtype == np.uint8
    assert img.flags.c_contiguous and img.flags.writeable


def test_face_pixels_where_projected_and_background_in_corners(renderer, face, camera):
    vertices, topology = face
    img = renderer.render(camera, vertices, eye_poses())
    # Points on the skin (cheeks, forehead, chin), away from the openings.
    xy = np.array([[-40.0, 20.0], [40.0, 20.0], [0.0, -60.0], [0.0, 80.0], [0.0, 10.0]])
    pts = np.column_stack([xy, surface_z(xy[:, 0], xy[:, 1])])
    for u, v in np.round(camera.project(pts)).astype(int):
        assert is_skin(img[v - 1 : v + 2, u - 1 : u + 2]).all(), (u, v, img[v, u])
    for v, u in [(0, 0), (0, W - 1), (H - 1, 0), (H - 1, W - 1), (5, W // 2)]:
        assert tuple(img[v, u]) == palette.BACKGROUND_RGB
    # The face is lit: skin pixels are not one flat colour.
    assert img[is_skin(img)].std(axis=0).max() > 3.0


def test_upright_orientation(renderer, face, camera):
    """The mouth opening (y > 0, below the eyes) shows its dark fill below the image centre."""
    img = renderer.render(camera, face[0], eye_poses())
    mouth = camera.project(np.array([[*MOUTH_CENTER, surface_z(np.array(0.0), np.array(MOUTH_CENTER[1]))]]))[0]
    u, v = np.round(mouth).astype(int)
    assert v > H // 2
    assert np.abs(img[v, u].astype(int) - palette.MOUTH_RGB).max() <= 2


def test_open_eye_shows_pupil_at_gaze_point(renderer, face, camera):
    eyes = eye_poses()
    img = renderer.render(camera, face[0], eyes)
    for pose in eyes:
        u, v = np.round(camera.project(gaze_point(pose)[None])[0]).astype(int)
        assert is_pupil(img[v - 1 : v + 2, u - 1 : u + 2]).all()
        # Iris (not pupil) a few mm out along the horizontal, still inside the opening.
        iris_pt = pose.center + np.array([4.0, 0.0, -np.sqrt(EYEBALL_RADIUS**2 - 16.0)])
        ui, vi = np.round(camera.project(iris_pt[None])[0]).astype(int)
        assert is_iris_or_pupil(img[vi : vi + 1, ui : ui + 1]).all() and not is_pupil(img[vi : vi + 1, ui : ui + 1]).any()
    # Iris/pupil pixels appear in both eye regions and nowhere else.
    ys, xs = np.nonzero(is_iris_or_pupil(img))
    eye_u = camera.project(np.array([p.center for p in eyes]))[:, 0]
    assert np.all(np.minimum(np.abs(xs - eye_u[0]), np.abs(xs - eye_u[1])) < 40)
    assert (xs < W // 2).any() and (xs > W // 2).any()


def test_lid_margins_have_lash_lines_and_shade_the_eyeball(renderer, face, camera):
    """The skin just outside the upper margin takes the lash colour (a crisp line mid-lid),
    and the sclera just inside it lies in the lid's shadow: darker than mid-opening."""
    vertices, topology = face
    img = renderer.render(camera, vertices, eye_poses()).astype(float)
    luma = img.mean(axis=-1)
    for ring, (_, cy) in zip(topology.eye_rings, EYE_CENTERS):
        top = vertices[ring[14]]   # upper lid, 10 mm sideways from the eye centre: sclera below it
        u, v = np.round(camera.project(top[None].astype(float))[0]).astype(int)
        v_mid = int(round(camera.project(np.array([[top[0], cy, top[2]]]))[0, 1]))
        shaded = img[v + 1, u]
        assert shaded.min() > 40 and shaded.max() - shaded.min() < 20   # sclera, darkened
        assert is_sclera(img[v_mid : v_mid + 1, u : u + 1].astype(np.uint8)).all()
        assert luma[v + 1, u] < 0.85 * luma[v_mid, u]
        cheek = np.array([[top[0], cy + 16.0, float(surface_z(np.array(top[0]), np.array(cy + 16.0)))]])
        uc, vc = np.round(camera.project(cheek)[0]).astype(int)
        assert luma[v - 2, u] < 0.8 * luma[vc, uc]
        # Mid-lid, the pixel row just above the margin is the crisp lash line itself.
        u, v = np.round(camera.project(vertices[ring[12]][None].astype(float))[0]).astype(int)
        assert np.abs(img[v - 1, u] - palette.LASH_LINE_RGB).max() < 40, img[v - 1, u]


def test_brows_are_painted_brow_coloured(face, camera):
    """The skin between a brow's edges takes the brow colour; without brows it is skin."""
    vertices, topology = face
    centres = [vertices[brow].reshape(-1, 3).mean(axis=0) for brow in topology.brows]
    no_brows = FaceTopology(topology.triangles, topology.eye_rings, topology.mouth_ring, np.zeros((2, 2, 0)))
    for topo, painted in ((topology, True), (no_brows, False)):
        with AvatarRenderer(W, H, topo, eyeball_radius=EYEBALL_RADIUS) as r:
            img = r.render(camera, vertices, eye_poses())
        for centre in centres:
            u, v = np.round(camera.project(centre[None].astype(float))[0]).astype(int)
            patch = img[v - 1 : v + 2, u - 1 : u + 2].reshape(-1, 3).astype(int)
            near_brow = np.abs(patch - palette.BROW_RGB).max(axis=1) <= 30
            assert near_brow.all() == painted and is_skin(patch[None].astype(np.uint8)).all() != painted, (painted, patch)


def test_inner_eye_corners_are_caruncle_pink(renderer, face, camera):
    """Just outside each ring's vertex n/2 (the medial corner on the avatar's mesh) the
    skin is pink: green well below red, unlike skin or the lash line."""
    vertices, topology = face
    img = renderer.render(camera, vertices, eye_poses()).astype(float)
    for ring, (cx, _) in zip(topology.eye_rings, EYE_CENTERS):
        corner = vertices[ring[len(ring) // 2]]
        u, v = np.round(camera.project(corner[None].astype(float))[0]).astype(int)
        r, g, b = img[v, u + 2 * int(np.sign(corner[0] - cx))]
        assert g / r < 0.72 and r > 150, (r, g, b)


def test_upper_lids_are_lit_as_draped_over_the_eyeballs(renderer, face, camera):
    """The upper margins' normals point out of the eyeball (a lid lies on it), whatever
    the mesh around them; the lower margins (away from the corners) keep the mesh's."""
    vertices, topology = face
    eyes = tuple(EyeballPose(p.center + np.array([6.0, 0.0, 0.0]), p.rotation) for p in eye_poses())
    renderer.render(camera, vertices, eyes)
    with renderer._ctx:   # the normals the face was lit with
        normals = np.frombuffer(renderer._face_nrm.read(), np.float32).reshape(-1, 3)
    mesh_normals = VertexNormals(topology.triangles, len(vertices))(vertices)
    for ring, eye in zip(topology.eye_rings, eyes):
        upper, lower = ring[9:], ring[3:6]
        radial = vertices[upper] - eye.center
        cos = np.sum(normals[upper] * radial, axis=1) / np.linalg.norm(normals[upper], axis=1) / np.linalg.norm(radial, axis=1)
        assert (np.abs(cos) > 0.999).all()   # either sign: the normals keep the winding's side
        cos_mesh = np.sum(normals[lower] * mesh_normals[lower], axis=1) / np.linalg.norm(normals[lower], axis=1) / np.linalg.norm(mesh_normals[lower], axis=1)
        assert (cos_mesh > 0.999).all()


def test_collapsed_rings_hide_the_eyes(renderer, face, camera):
    vertices, topology = face
    closed = vertices
    for ring, (_, cy) in zip(topology.eye_rings, EYE_CENTERS):
        closed = collapse_ring(closed, ring, cy)
    img = renderer.render(camera, closed, eye_poses())
    assert not is_iris_or_pupil(img).any()
    socket = np.all(np.abs(img.astype(int) - palette.SOCKET_RGB) <= 2, axis=-1)
    assert not socket.any()
    # One eye closed, the other open: only the open one keeps its pupil.
    one = collapse_ring(vertices, topology.eye_rings[0], EYE_CENTERS[0][1])
    img = renderer.render(camera, one, eye_poses())
    _, xs = np.nonzero(is_pupil(img))
    assert len(xs) > 0 and (xs > W // 2).all()


def test_eyeball_visible_only_through_the_opening(renderer, face, camera):
    """Even an eyeball pushed in front of the face shows only inside the lid-margin ring."""
    vertices, topology = face
    eyes = tuple(EyeballPose(p.center - np.array([0.0, 0.0, 15.0]), p.rotation) for p in eye_poses())
    img = renderer.render(camera, vertices, eyes)
    opening = np.zeros((H, W), np.uint8)
    for ring in topology.eye_rings:
        cv2.fillPoly(opening, [np.round(camera.project(vertices[ring])).astype(np.int32)], 1)
    # One pixel of slack for the rasterisation rules at the rim.
    near_opening = cv2.dilate(opening, np.ones((3, 3), np.uint8)).astype(bool)
    eye_pixels = is_iris_or_pupil(img) | is_sclera(img)
    assert eye_pixels[opening.astype(bool)].mean() > 0.75   # the eyeball fills most of the opening
    assert not eye_pixels[~near_opening].any()


def test_crescent_opening_is_filled_exactly(renderer, face, camera):
    """A nearly closed, bent eye (its ring's centroid lies outside the opening) shows no
    background through the slit, and the eyeball only inside it."""
    vertices, topology = face
    ring = topology.eye_rings[0]
    cx, cy = EYE_CENTERS[0]
    v = vertices.copy()
    v[ring, 1] = cy + 0.3 * (v[ring, 1] - cy)                   # squash to a slit
    v[:, 1] -= 6.0 * np.exp(-(((v[:, 0] - cx) / 8.0) ** 2))     # bend it (a shear: no fold-overs)
    v[:, 2] = surface_z(v[:, 0], v[:, 1])
    polygon = camera.project(v[ring])
    centroid = polygon.mean(axis=0)
    assert cv2.pointPolygonTest(polygon.astype(np.float32), tuple(map(float, centroid)), False) < 0

    img = renderer.render(camera, v, eye_poses())
    opening = np.zeros((H, W), np.uint8)
    cv2.fillPoly(opening, [np.round(polygon).astype(np.int32)], 1)
    inner = cv2.erode(opening, np.ones((3, 3), np.uint8)).astype(bool)
    near = cv2.dilate(opening, np.ones((3, 3), np.uint8)).astype(bool)
    assert inner.sum() > 50
    assert not is_background(img)[inner].any()
    right_eye = (is_iris_or_pupil(img) | is_sclera(img)) & (np.arange(W) < W // 2)
    assert right_eye[inner].mean() > 0.5
    assert not right_eye[~near].any()


def with_quad(vertices, topology, center: tuple[float, float, float], facing_camera: bool):
    """The face plus a 40 x 24 mm quad at `center`, wound like the face's front (facing
    the camera) or like the back of its skin."""
    x, y, z = center
    quad = np.array([[x - 20, y - 12, z], [x + 20, y - 12, z], [x + 20, y + 12, z], [x - 20, y + 12, z]])
    n = len(vertices)
    tris = np.array([[n, n + 1, n + 2], [n, n + 2, n + 3]])
    front_sign = np.sign(np.cross(*np.diff(vertices[topology.triangles[0]], axis=0))[2])
    quad_sign = np.sign(np.cross(*np.diff(quad[tris[0] - n], axis=0))[2])
    if (quad_sign == front_sign) != facing_camera:
        tris = tris[:, ::-1]
    topo = FaceTopology(np.concatenate([topology.triangles, tris]), topology.eye_rings, topology.mouth_ring, topology.brows)
    return np.concatenate([vertices, quad.astype(np.float32)]), topo


@pytest.mark.parametrize("facing_camera", [False, True])
def test_skin_seen_from_behind_through_an_opening_does_not_hide_the_eye(face, camera, facing_camera):
    """Through an eye opening at a slant one sees the back of the skin behind it; in a
    real head the eyeball is there. A back-facing patch behind the eyeball must leave it
    visible, while the same patch facing the camera is skin in front and covers it."""
    eye = eye_poses()[0]
    vertices, topo = with_quad(*face, (*EYE_CENTERS[0], eye.center[2]), facing_camera)
    with AvatarRenderer(W, H, topo) as r:
        img = r.render(camera, vertices, eye_poses())
    u, v = np.round(camera.project(gaze_point(eye)[None])[0]).astype(int)
    assert is_pupil(img[v - 1 : v + 2, u - 1 : u + 2]).all() != facing_camera
    if facing_camera:
        assert is_skin(img[v - 1 : v + 2, u - 1 : u + 2]).all()


@pytest.mark.parametrize("facing_camera", [False, True])
def test_skin_seen_from_behind_elsewhere_is_skin(face, camera, facing_camera):
    """Outside the openings (a fold of the mesh) the back of the skin is drawn, lit from
    the side seen: no background shows through."""
    center = (110.0, 0.0, FACE_Z)   # beside the face, over the background
    vertices, topo = with_quad(*face, center, facing_camera)
    with AvatarRenderer(W, H, topo) as r:
        img = r.render(camera, vertices, eye_poses())
    u, v = np.round(camera.project(np.array([center]))[0]).astype(int)
    patch = img[v - 5 : v + 6, u - 5 : u + 6]
    assert is_skin(patch).all()
    assert patch.mean() > 0.6 * np.mean(palette.SKIN_RGB)   # lit, not just ambient


def test_either_consistent_winding_gives_the_same_image(renderer, face, camera):
    vertices, topology = face
    reversed_topology = FaceTopology(topology.triangles[:, ::-1], topology.eye_rings, topology.mouth_ring, topology.brows)
    with AvatarRenderer(W, H, reversed_topology) as r:
        b = r.render(camera, vertices, eye_poses((yaw(15.0), yaw(15.0))))
    a = renderer.render(camera, vertices, eye_poses((yaw(15.0), yaw(15.0))))
    diff = np.abs(a.astype(int) - b)
    assert diff.max() <= 2 and (diff > 0).mean() < 1e-3   # float rounding of the vertex order


def test_eye_rotation_moves_pupil_by_projected_amount(renderer, face, camera):
    vertices = face[0]

    def pupil_centroids(eyes):
        img = renderer.render(camera, vertices, eyes)
        ys, xs = np.nonzero(is_pupil(img))
        right = xs < W // 2
        return np.array([[xs[m].mean(), ys[m].mean()] for m in (right, ~right)])

    straight = eye_poses()
    turned = eye_poses((yaw(20.0), yaw(20.0)))
    moved = pupil_centroids(turned) - pupil_centroids(straight)
    expected = np.array(
        [camera.project(gaze_point(t)[None])[0] - camera.project(gaze_point(s)[None])[0] for s, t in zip(straight, turned)]
    )
    assert np.all(np.abs(expected[:, 0]) > 8.0)   # the test is not vacuous
    np.testing.assert_allclose(moved, expected, atol=1.0)


def test_vertex_changes_show_up_between_calls(renderer, face, camera):
    vertices = face[0]
    eyes = eye_poses()
    a = renderer.render(camera, vertices, eyes)
    a_before = a.copy()
    shifted = vertices + np.array([25.0, 0.0, 0.0], np.float32)
    b = renderer.render(camera, shifted, eyes)
    c = renderer.render(camera, vertices, eyes)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    # Each call returns a fresh array: later frames do not overwrite earlier ones.
    np.testing.assert_array_equal(a, a_before)
    # The face moved right by about the projected shift.
    shift_px = 25.0 * camera.fx / FACE_Z
    moved = np.nonzero(~is_background(b))[1].mean() - np.nonzero(~is_background(a))[1].mean()
    assert abs(moved - shift_px) < 0.15 * shift_px


def test_resize_and_camera_size_change(renderer, face):
    vertices = face[0]
    try:
        for w, h in [(320, 240), (512, 512)]:
            cam = Camera.for_image(w, h)
            renderer.resize(w, h)
            img = renderer.render(cam, vertices, eye_poses())
            assert img.shape == (h, w, 3)
            u, v = np.round(cam.project(np.array([[0.0, 10.0, surface_z(np.array(0.0), np.array(10.0))]]))[0]).astype(int)
            assert is_skin(img[v : v + 1, u : u + 1]).all()
        # A camera of another size resizes the framebuffer by itself.
        img = renderer.render(Camera.for_image(400, 300), vertices, eye_poses())
        assert img.shape == (300, 400, 3) and renderer.size == (400, 300)
    finally:
        renderer.resize(W, H)


def test_release_is_idempotent_and_blocks_rendering(face, camera):
    r = AvatarRenderer(64, 48, face[1])
    r.release()
    r.release()
    with pytest.raises(RuntimeError):
        r.render(camera, face[0], eye_poses())


def test_vertex_normals_of_an_octahedron_point_outwards():
    """By symmetry each octahedron vertex normal is its own direction, whatever the areas."""
    vertices = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], np.float32)
    vertices[:, 2] *= 2.0   # unequal triangles: the z vertices still keep axis normals
    triangles = []
    for x in (0, 1):
        for y in (2, 3):
            for z in (4, 5):
                tri = [x, y, z]
                # Counter-clockwise seen from outside.
                if np.linalg.det(vertices[tri]) < 0:
                    tri = [x, z, y]
                triangles.append(tri)
    n = VertexNormals(np.array(triangles), 7)(vertices)   # vertex 6 is unused
    assert n.shape == (7, 3) and n.dtype == np.float32
    np.testing.assert_array_equal(n[6], 0.0)
    unit = n[:6] / np.linalg.norm(n[:6], axis=1, keepdims=True)
    np.testing.assert_allclose(unit, vertices / np.linalg.norm(vertices, axis=1, keepdims=True), atol=1e-6)


@pytest.mark.parametrize("size", [(640, 480), (1280, 720), (320, 240), (480, 640)])
def test_placeholder_is_plain_outside_a_central_text_box_and_cached(size):
    w, h = size
    a = placeholder_frame(w, h)
    assert a.shape == (h, w, 3) and a.dtype == np.uint8
    assert a is placeholder_frame(w, h) and not a.flags.writeable   # cached, and kept intact
    # Text area fixed in advance: a centred box 60% wide and 12% high.
    box = np.zeros((h, w), bool)
    box[int(0.44 * h) : int(0.56 * h) + 1, int(0.2 * w) : int(0.8 * w) + 1] = True
    assert (a[~box] == palette.BACKGROUND_RGB).all()
    assert (~is_background(a[box])).sum() > 0.01 * box.sum()   # the text is there and legible-sized
    assert placeholder_frame(w, h, "Camera paused").shape == (h, w, 3)
    assert not np.array_equal(placeholder_frame(w, h, "Camera paused"), a)


def print_timing(frames: int = 300, spacing: float = 7.5) -> None:
    """Median and p99 wall ms per frame (normals, upload, draw, read-back) at two sizes,
    and the mean CPU ms per frame summed over all threads (llvmpipe rasterises on several).

    spacing 7.5 mm gives about 920 face triangles, like MediaPipe's face mesh.
    """
    vertices, topology = make_face(spacing)
    eyes = eye_poses()
    for w, h in [(640, 480), (512, 512)]:
        cam = Camera.for_image(w, h)
        with AvatarRenderer(w, h, topology) as r:
            for _ in range(20):
                r.render(cam, vertices, eyes)
            ts, cpu = [], []
            for i in range(frames):
                v = vertices + np.float32(0.01 * (i % 7))   # new vertices every frame
                t, c = time.perf_counter(), time.process_time()
                r.render(cam, v, eyes)
                ts.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
        ts = np.array(ts) * 1e3
        print(
            f"{w}x{h}: {len(topology.triangles)} face triangles, median {np.median(ts):.2f} ms, "
            f"p99 {np.percentile(ts, 99):.2f} ms, CPU {np.mean(cpu) * 1e3:.2f} ms"
        )
