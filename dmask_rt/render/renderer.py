"""Offscreen OpenGL renderer of the avatar: shaded face, eyeballs behind the lids.

Per frame, in one framebuffer the size of the input frame:
  1. clear the colour to the background and the depth to 0.0 (nothing can pass);
  2. paint each eye opening (a triangle fan of its lid-margin ring) dark pink, writing
     depth 1.0 so only there can the eyeballs pass the depth test; paint the mouth
     opening dark, writing depth 0.0;
  3. draw both eyeballs with the depth test: they appear only inside the eye openings;
     then multiply in the lids' shadow: a band below each upper margin and a narrower
     one above each lower margin (a fraction of the lid gap deep, darkest at the margin);
  4. clear only the depth buffer and draw the face surface over everything, so the
     lid margins cover the eyeball exactly where they are, and the face occludes
     itself when the head turns. A closed lid (collapsed ring) leaves no opening, so
     the eye disappears as in a blink;
  5. blend the upper lash lines over the skin: per eye a strip from the upper margin
     outwards over the lid (LASH_LINE_MM wide mid-lid, none at the corners), drawn a
     little nearer the camera than the skin and depth tested, so the face still hides
     it when the head turns away.
The back of the skin is drawn apart from the front. The face mesh is the front of a
solid head, so a triangle seen from behind is either seen through an opening (the skin
behind an eye seen at a slant), where in life the eyeball or the mouth interior is, or
lies in a fold of the mesh (under the nose), where it must stay skin. So the fills and
eyeballs mark the openings with alpha 1 (the rest is cleared to alpha 0); back faces
are drawn first, blended by destination alpha so they never paint over an opening,
then front faces opaquely. Which winding is "front" is decided each frame: the mesh's
vector area (sum of its triangles' area normals) points out of the face, hence towards
the camera whenever the face can be seen at all. The triangles only need a consistent
winding, either way.

What the face shows besides skin is there for a face tracker as much as for the doctor:
`dmask eval` reads the avatar with MediaPipe, whose eye model was trained on real eyes
and finds lids, corners and irises by their cues (on a bare avatar it pulled the eye
corners along with the iris and read eye turns at about half the rendered angle). All
of it is fixed, identical for every patient, and moves only with the fitted mesh:
  - lash lines: the lower margins and the eye corners take the lash colour on their
    vertices (Gouraud-faded into the skin); the upper margins get a crisp strip (step
    5). Faded over the lid's first row of triangles (some 5 mm) the upper line was a
    soft dark band that the tracker took for part of the opening: narrowed and shut
    eyes read too open;
  - the lids' shadow on the eyeball (step 3), darkest at the upper margin;
  - upper lids lit as lying on the eyeballs (DRAPE: the normals around each upper
    margin turn towards the eyeball's radius), not as the mesh's sunken socket;
  - brows, painted on their vertices (FaceTopology.brows): the iris model sees the brow
    in its eye crop (it outputs brow points) and was trained on faces that all have one;
  - a brown iris, as most are (it was blue-grey);
  - a caruncle-pink inner eye corner (the ring's vertex n/2, the medial corner).
Each was measured by re-rendering the dev clips' fits (p01, p02, p04, p09; 300 frames
each) and reading them back as `dmask eval` does, one change after another (gaze error
in degrees, MRD1 error in iris diameters, blink F1 and per-frame kappa on p02 and p04):
  bare (lash lines and shadow as before, blue-grey iris)   gaze 7.7  MRD1 0.106  F1 0.39  kappa 0.21
  + brows                                                   6.5       0.092       0.72     0.50
  + upper lids draped (the lower ones too: gaze 5.9)        5.4       0.083       0.51     0.26
  + brown iris                                              5.1       0.069       0.57     0.31
  + crisp upper lash line, darker shadow at the margin      5.3       0.059       0.76     0.48
  + caruncle                                                5.1       0.057       0.73     0.48
The whole of it, `dmask eval` with its defaults (p01, p02, p04, p09, every frame): eye-region
points 1.30 -> 1.21% of the width, gaze right 7.0 -> 5.0 and left 8.5 -> 5.4 degrees,
MRD1 0.105 -> 0.063, MRD2 0.050 -> 0.050, blink F1 0.66 -> 0.77, kappa 0.35 -> 0.55.
A rendered shut eye now reads 0.039 open (lid gap / eye width; 0.081 bare; real shut eyes
about 0.04). Tried and not kept: an upper-lid crease (a darker row of vertices 5-10 mm
above the margin, moving with it: no gain), flatter or more frontal light (shut eyes read
more open), darker, wider or inward lash lines and shadows (read as part of the opening,
or worse gaze), a dimmer sclera, darker eyeball shading, no corneal highlight (all within
0.15 degrees), a crisp geometric brow (worse than the soft painted one); a 0.8 px blur
of the whole frame gained 0.3 degrees of gaze, 2x supersampling nothing.

The projection is flipped vertically, so the framebuffer read back bottom row first
already is the image top row first: no flip copy.

Cost on llvmpipe, 2 cores shared with other jobs (tests/test_render.py print_timing(),
300 frames, ~940 face triangles): 640x480 median 1.9-2.2 ms, p99 3.2-4.1 ms; 512x512
median 1.85-2.1 ms, p99 3.1-3.6 ms; about 2.2-2.9 ms of CPU a frame over llvmpipe's
threads (before brows, drape and lash strips, run alternately: 1.5-2.3 ms at 640x480;
the drape and lash strips add about 0.12 ms of Python a frame). About 0.6 ms is fixed:
clears, the read-back and Python. Run it from the repo root:

    .venv/bin/python -c "import tests.test_render as t; t.print_timing()"
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from types import TracebackType

import cv2
import moderngl
import numpy as np
import scipy.sparse as sp

from dmask_rt.model.camera import Camera
from dmask_rt.render import palette
from dmask_rt.render.normals import VertexNormals
from dmask_rt.render.sphere import uv_hemisphere
from dmask_rt.model.topology import FaceTopology

# Key light from the upper left of the camera (OpenCV frame: -y is up, -z towards the camera).
LIGHT_DIR = tuple(np.array([-0.35, -0.55, -1.0]) / np.linalg.norm([-0.35, -0.55, -1.0]))
FACE_AMBIENT = 0.35
FACE_SPECULAR = 0.05
FACE_SHININESS = 20.0
EYE_AMBIENT = 0.6       # eyes stay bright whatever the light: the clinician looks at them
#: Lash line: how far each lid-margin vertex takes the lash colour (Gouraud-faded into the
#: skin around it). A face tracker finds the lids by these lines, as in a real eye.
LASH_LOWER, LASH_CORNER = 0.4, 0.6
#: The upper lash line is a strip instead, crisp on the margin's skin side: its width (mm)
#: mid-lid (a sine along the lid, zero at the corners) and its opacity at the margin and
#: at its outer edge; drawn this much (mm) nearer the camera than the skin under it.
LASH_LINE_MM = 1.2
LASH_LINE_ALPHA = (1.0, 0.5)
LASH_LINE_LIFT_MM = 0.3
#: Caruncle: how far the medial eye corner (eye ring's vertex n/2) takes the caruncle's pink.
CARUNCLE = 0.8
#: Brows: how far their vertices take the brow colour (Gouraud-faded into the skin
#: around them, which at this mesh's resolution makes a soft brow about as wide as one).
BROW = 1.0
#: Upper lids draped over the eyeballs: per ring of vertices above each eye opening (the
#: upper margin with its corners, the margin's mesh neighbours, theirs), how far the
#: vertex normal turns from the mesh's towards the outward radius of the eyeball. A lid
#: lies on the eyeball: lit so, it is a convex, lit cover, not a sunken, shaded patch.
#: (Draping the lower lids too measured worse: they turn down, away from the light.)
DRAPE = (1.0, 0.7, 0.3)
#: Shadow inside the opening: (darkening at the margin, band depth as a fraction of the
#: lid gap) below the upper lid and above the lower one. Light and narrow, so that a
#: band of sclera above or below the iris (lid retraction) still shows white: at
#: (0.8, 0.3), tuned for MediaPipe's reading, a 1 mm band read as dark grey.
SHADE_UPPER = (0.4, 0.12)
SHADE_LOWER = (0.2, 0.1)


@dataclass(frozen=True)
class EyeballPose:
    """Placement of one eyeball.

    center:   (3,) eyeball centre in the camera frame, mm.
    rotation: (3, 3) maps eyeball-local directions to the camera frame; local -z is the
              gaze axis (identity = looking straight at the camera).
    """

    center: np.ndarray
    rotation: np.ndarray


def _create_context() -> moderngl.Context:
    """A headless GL context: EGL (works on Mesa llvmpipe), else the platform default."""
    try:
        return moderngl.create_standalone_context(backend="egl")
    except Exception as egl_error:
        try:
            return moderngl.create_standalone_context()
        except Exception as default_error:
            raise RuntimeError(
                f"no OpenGL context: EGL failed ({egl_error}), default backend failed ({default_error})"
            ) from default_error


def _program(ctx: moderngl.Context, name: str) -> moderngl.Program:
    """Compile shaders/<name>.vert.glsl + shaders/<name>.frag.glsl (package data)."""
    shaders = resources.files("dmask_rt.render") / "shaders"
    return ctx.program(
        vertex_shader=(shaders / f"{name}.vert.glsl").read_text(),
        fragment_shader=(shaders / f"{name}.frag.glsl").read_text(),
    )


def _fan_triangles(ring_sizes: list[int]) -> np.ndarray:
    """Triangle fans over consecutive blocks [centroid, ring...]: (sum n, 3) int32."""
    tris, base = [], 0
    for n in ring_sizes:
        i = np.arange(n)
        tris.append(np.stack([np.full(n, base), base + 1 + i, base + 1 + (i + 1) % n], axis=1))
        base += n + 1
    return np.concatenate(tris).astype(np.int32)


def _vertex_layers(triangles: np.ndarray, ring: np.ndarray, n_layers: int, n_vertices: int) -> list[np.ndarray]:
    """Vertex indices at 0, 1, ..., n_layers - 1 mesh edges from the vertices of `ring`."""
    tri = np.asarray(triangles)
    a = np.concatenate([tri[:, 0], tri[:, 1], tri[:, 2]])
    b = np.concatenate([tri[:, 1], tri[:, 2], tri[:, 0]])
    adjacency = sp.csr_matrix((np.ones(2 * len(a), np.float32), (np.r_[a, b], np.r_[b, a])), shape=(n_vertices, n_vertices))
    seen = np.zeros(n_vertices, bool)
    layer = np.zeros(n_vertices, bool)
    layer[ring] = True
    layers = []
    for _ in range(n_layers):
        layers.append(np.flatnonzero(layer))
        seen |= layer
        layer = (adjacency @ layer.astype(np.float32) > 0) & ~seen
    return layers


def _band_triangles(n_strips: int, chain_len: int) -> np.ndarray:
    """Triangles of n_strips bands, each an outer chain then an inner chain of chain_len vertices."""
    j = np.arange(chain_len - 1)
    tris = []
    for k in range(n_strips):
        o, i = 2 * k * chain_len + j, (2 * k + 1) * chain_len + j
        tris.append(np.stack([o, o + 1, i + 1], axis=1))
        tris.append(np.stack([o, i + 1, i], axis=1))
    return np.concatenate(tris).astype(np.int32)


def _lid_chains(ring: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(upper, lower) chains of a lid ring [corner, lower..., corner, upper reversed...]:
    both run corner to corner, and the j-th upper vertex faces the j-th lower one."""
    n = len(ring)
    half = n // 2
    return ring[np.r_[0, n - 1 : half - 1 : -1]], ring[: half + 1]


class AvatarRenderer:
    """Renders the avatar face and eyeballs to an RGB image of the input frame's size.

    Owns one standalone GL context; use from one thread at a time (the context is made
    current for each call, so several renderers or threads may take turns).
    """

    def __init__(
        self,
        width: int,
        height: int,
        topology: FaceTopology,
        eyeball_radius: float = 12.0,
        iris_radius: float = 5.85,
        pupil_radius: float = 2.0,
    ) -> None:
        if not 0.0 < pupil_radius < iris_radius < eyeball_radius:
            raise ValueError("need 0 < pupil_radius < iris_radius < eyeball_radius")
        if topology.eye_rings.shape[1] % 2:
            raise ValueError("eye rings need an even length: a corner, the lower lid, a corner, the upper lid")
        self._topology = topology
        self._ctx = _create_context()
        self._fbo: moderngl.Framebuffer | None = None
        self._size = (0, 0)
        self._n_vertices = 0
        self._normals: VertexNormals | None = None
        self._face_vao: moderngl.VertexArray | None = None
        self._face_pos: moderngl.Buffer | None = None
        self._face_nrm: moderngl.Buffer | None = None
        with self._ctx:
            self._face_prog = _program(self._ctx, "face")
            self._eye_prog = _program(self._ctx, "eyeball")
            self._fill_prog = _program(self._ctx, "fill")
            self._shade_prog = _program(self._ctx, "shade")
            self._lash_prog = _program(self._ctx, "lash")
            self._set_constant_uniforms(eyeball_radius, iris_radius, pupil_radius)
            self._face_ibo = self._ctx.buffer(topology.triangles.tobytes())
            self._tint_vbo: moderngl.Buffer | None = None

            # Shadow bands: per eye and lid, the margin chain (corner, 7 margin vertices,
            # corner) and the same chain moved part of the way across the opening.
            self._shade_pos = np.zeros((2, 2, 2, self._chain_len(), 3), np.float32)
            shade = np.zeros(self._shade_pos.shape[:-1], np.float32)
            for lid, (dark, _) in enumerate((SHADE_UPPER, SHADE_LOWER)):
                shade[:, lid, 0] = dark
            self._shade_vbo = self._ctx.buffer(reserve=self._shade_pos.nbytes)
            self._shade_attr = self._ctx.buffer(shade.tobytes())
            self._shade_ibo = self._ctx.buffer(_band_triangles(4, self._chain_len()).tobytes())
            self._shade_vao = self._ctx.vertex_array(
                self._shade_prog,
                [(self._shade_vbo, "3f", "a_pos"), (self._shade_attr, "1f", "a_shade")],
                self._shade_ibo,
                4,
            )

            # Lash lines: per eye, the upper margin chain and the same chain moved outwards.
            n = self._chain_len()
            self._lash_pos = np.zeros((2, 2, n, 3), np.float32)
            alpha = np.zeros((2, 2, n), np.float32)
            alpha[:, 0], alpha[:, 1] = LASH_LINE_ALPHA
            self._upper_chains = np.array([_lid_chains(r)[0] for r in topology.eye_rings])
            self._lower_chains = np.array([_lid_chains(r)[1] for r in topology.eye_rings])
            self._brow_vertices = topology.brows.reshape(2, -1)
            self._lash_width = (LASH_LINE_MM * np.sin(np.pi * np.arange(n) / (n - 1))).astype(np.float32)[:, None]
            self._lash_vbo = self._ctx.buffer(reserve=self._lash_pos.nbytes)
            self._lash_attr = self._ctx.buffer(alpha.tobytes())
            self._lash_ibo = self._ctx.buffer(_band_triangles(2, n).tobytes())
            self._lash_vao = self._ctx.vertex_array(
                self._lash_prog,
                [(self._lash_vbo, "3f", "a_pos"), (self._lash_attr, "1f", "a_alpha")],
                self._lash_ibo,
                4,
            )

            sphere_points, sphere_tris = uv_hemisphere()
            self._sphere_vbo = self._ctx.buffer(sphere_points.tobytes())
            self._sphere_ibo = self._ctx.buffer(sphere_tris.tobytes())
            self._eye_vao = self._ctx.vertex_array(
                self._eye_prog, [(self._sphere_vbo, "3f", "a_dir")], self._sphere_ibo, 4
            )

            # Fill vertices: per ring, its centroid then its ring vertices; one draw for all.
            self._rings = [topology.eye_rings[0], topology.eye_rings[1], topology.mouth_ring]
            sizes = [len(r) for r in self._rings]
            self._fill_pos = np.zeros((sum(sizes) + len(sizes), 3), np.float32)
            self._fill_vbo = self._ctx.buffer(reserve=self._fill_pos.nbytes)
            socket = (*palette.unit_rgb(palette.SOCKET_RGB), 1.0)
            mouth = (*palette.unit_rgb(palette.MOUTH_RGB), 0.0)
            color_depth = np.array(
                [socket] * (sizes[0] + sizes[1] + 2) + [mouth] * (sizes[2] + 1), np.float32
            )
            self._fill_attr = self._ctx.buffer(color_depth.tobytes())
            self._fill_ibo = self._ctx.buffer(_fan_triangles(sizes).tobytes())
            self._fill_vao = self._ctx.vertex_array(
                self._fill_prog,
                [(self._fill_vbo, "3f", "a_pos"), (self._fill_attr, "4f", "a_color_depth")],
                self._fill_ibo,
                4,
            )
        self.resize(width, height)

    def _chain_len(self) -> int:
        return self._topology.eye_rings.shape[1] // 2 + 1

    def _set_constant_uniforms(self, eyeball_radius: float, iris_radius: float, pupil_radius: float) -> None:
        """Colours, light and eyeball geometry: fixed for the renderer's life."""
        face, eye = self._face_prog, self._eye_prog
        face["u_skin"].value = palette.unit_rgb(palette.SKIN_RGB)
        face["u_light_dir"].value = LIGHT_DIR
        face["u_ambient"].value = FACE_AMBIENT
        face["u_specular"].value = FACE_SPECULAR
        face["u_shininess"].value = FACE_SHININESS
        self._lash_prog["u_lash"].value = palette.unit_rgb(palette.LASH_LINE_RGB)
        eye["u_light_dir"].value = LIGHT_DIR
        eye["u_ambient"].value = EYE_AMBIENT
        eye["u_sclera"].value = palette.unit_rgb(palette.SCLERA_RGB)
        eye["u_iris"].value = palette.unit_rgb(palette.IRIS_RGB)
        eye["u_pupil"].value = palette.unit_rgb(palette.PUPIL_RGB)
        eye["u_radius"].value = eyeball_radius
        eye["u_pupil_angle"].value = float(np.arcsin(pupil_radius / eyeball_radius))
        eye["u_iris_angle"].value = float(np.arcsin(iris_radius / eyeball_radius))

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the framebuffer."""
        return self._size

    def resize(self, width: int, height: int) -> None:
        """Replace the framebuffer with one of width x height (no-op if unchanged)."""
        width, height = int(width), int(height)
        if width <= 0 or height <= 0:
            raise ValueError(f"frame size must be positive, got {width}x{height}")
        if (width, height) == self._size:
            return
        with self._ctx:
            self._release_framebuffer()
            self._color_rb = self._ctx.renderbuffer((width, height), components=4)
            self._depth_rb = self._ctx.depth_renderbuffer((width, height))
            self._fbo = self._ctx.framebuffer([self._color_rb], self._depth_rb)
        self._rgba = np.empty((height, width, 4), np.uint8)
        self._size = (width, height)

    def _release_framebuffer(self) -> None:
        if self._fbo is not None:
            for obj in (self._fbo, self._color_rb, self._depth_rb):
                obj.release()
            self._fbo = None

    def _ensure_face_buffers(self, n_vertices: int) -> None:
        """(Re)allocate the per-frame vertex and normal buffers for n_vertices."""
        if n_vertices == self._n_vertices:
            return
        if self._face_vao is not None:
            for obj in (self._face_vao, self._face_pos, self._face_nrm, self._tint_vbo):
                obj.release()
        self._face_pos = self._ctx.buffer(reserve=12 * n_vertices)
        self._face_nrm = self._ctx.buffer(reserve=12 * n_vertices)
        self._tint_vbo = self._ctx.buffer(self._tints(n_vertices).tobytes())
        self._face_vao = self._ctx.vertex_array(
            self._face_prog,
            [(self._face_pos, "3f", "a_pos"), (self._face_nrm, "3f", "a_normal"), (self._tint_vbo, "4f", "a_tint")],
            self._face_ibo,
            4,
        )
        self._normals = VertexNormals(self._topology.triangles, n_vertices)
        # Per eye: the draped vertices and how far each turns (one vertex, one eye).
        self._drape = []
        for upper in self._upper_chains:
            layers = _vertex_layers(self._topology.triangles, upper, len(DRAPE), n_vertices)
            weights = [np.full(len(idx), w, np.float32) for idx, w in zip(layers, DRAPE)]
            self._drape.append((np.concatenate(layers + [np.zeros(0, np.int64)]), np.concatenate(weights + [np.zeros(0, np.float32)])[:, None]))
        self._n_vertices = n_vertices

    def _drape_lids(self, v: np.ndarray, normals: np.ndarray, eyes: tuple[EyeballPose, EyeballPose], outward: float) -> None:
        """Turn the normals around each eye opening towards its eyeball's radius (DRAPE), in place.

        The normals keep the mesh's winding (`outward`), which the shader relies on."""
        for (idx, w), eye in zip(self._drape, eyes):
            n = normals[idx]
            n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
            r = v[idx] - np.asarray(eye.center, np.float32)
            r *= outward / np.maximum(np.linalg.norm(r, axis=1, keepdims=True), 1e-12)
            normals[idx] = (1.0 - w) * n + w * r

    def _update_lash_lines(self, vertices: np.ndarray, normals: np.ndarray) -> None:
        """Lash-line strips: each upper margin and, beside it, the margin moved over the skin
        (perpendicular to the margin, in the skin's tangent plane) away from the opening.

        "Away" is towards the brows (a closed lid's margin lies on the lower one, so the
        opening cannot tell); without brows, away from the lower margin."""
        m = vertices[self._upper_chains]                      # (2, chain, 3)
        tangent = np.empty_like(m)
        tangent[:, 1:-1] = m[:, 2:] - m[:, :-2]
        tangent[:, 0], tangent[:, -1] = m[:, 1] - m[:, 0], m[:, -1] - m[:, -2]
        side = np.cross(tangent, normals[self._upper_chains])
        side /= np.maximum(np.linalg.norm(side, axis=2, keepdims=True), 1e-12)
        if self._brow_vertices.shape[1]:
            away = vertices[self._brow_vertices].mean(axis=1) - m.mean(axis=1)
        else:
            away = m.mean(axis=1) - vertices[self._lower_chains].mean(axis=1)
        sign = np.where(np.einsum("ecx,ex->e", side, away) < 0.0, -1.0, 1.0).astype(np.float32)
        self._lash_pos[:, 0] = m
        self._lash_pos[:, 1] = m + (sign[:, None, None] * self._lash_width) * side
        p = self._lash_pos.reshape(-1, 3)
        p *= 1.0 - LASH_LINE_LIFT_MM / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-6)
        self._lash_vbo.write(self._lash_pos)

    def _tints(self, n_vertices: int) -> np.ndarray:
        """(n_vertices, 4) per vertex: the colour painted on the skin there and how much (0 = skin)."""
        tint = np.zeros((n_vertices, 4), np.float32)
        lash = palette.unit_rgb(palette.LASH_RGB)
        for upper, lower in zip(self._upper_chains, self._lower_chains):
            tint[lower[1:-1]] = (*lash, LASH_LOWER)
            tint[upper[[0, -1]]] = (*lash, LASH_CORNER)
            tint[upper[-1]] = (*palette.unit_rgb(palette.CARUNCLE_RGB), CARUNCLE)
        tint[self._topology.brows.ravel()] = (*palette.unit_rgb(palette.BROW_RGB), BROW)
        return tint

    def _update_fills(self, vertices: np.ndarray) -> None:
        """Write each ring's centroid and ring vertices into the fill vertex buffer."""
        start = 0
        for ring in self._rings:
            pts = vertices[ring]
            self._fill_pos[start] = pts.mean(axis=0)
            self._fill_pos[start + 1 : start + 1 + len(ring)] = pts
            start += len(ring) + 1
        self._fill_vbo.write(self._fill_pos)

    def _update_shades(self, vertices: np.ndarray) -> None:
        """Shadow bands: each lid's margin chain, and that chain moved a fraction of the way
        (SHADE_UPPER / SHADE_LOWER) towards the facing margin."""
        upper, lower = vertices[self._upper_chains], vertices[self._lower_chains]  # (2, chain, 3)
        for lid, (outer, facing, (_, depth)) in enumerate(((upper, lower, SHADE_UPPER), (lower, upper, SHADE_LOWER))):
            self._shade_pos[:, lid, 0] = outer
            self._shade_pos[:, lid, 1] = outer + depth * (facing - outer)
        self._shade_vbo.write(self._shade_pos)

    def render(
        self, camera: Camera, vertices: np.ndarray, eyes: tuple[EyeballPose, EyeballPose]
    ) -> np.ndarray:
        """Draw the avatar seen by `camera`: (height, width, 3) uint8 RGB, top row first.

        vertices: (N, 3) face vertices in the camera frame, mm. eyes: (right, left)
        eyeball poses. If the camera's image size differs from the framebuffer, the
        framebuffer is resized first (the input resolution can change mid-stream).
        """
        if self._fbo is None:
            raise RuntimeError("renderer was released")
        v = np.ascontiguousarray(vertices, dtype=np.float32)
        if v.ndim != 2 or v.shape[1] != 3 or len(v) < self._topology.min_vertex_count:
            raise ValueError(
                f"vertices must be (N>={self._topology.min_vertex_count}, 3), got {v.shape}"
            )
        if len(eyes) != 2:
            raise ValueError("eyes must be (right, left)")
        self.resize(camera.width, camera.height)

        # Negated y row: the image renders upside down in GL terms, i.e. top row first in memory.
        proj = camera.gl_projection()
        proj[1] *= -1.0
        proj_bytes = proj.T.astype(np.float32).tobytes()   # GLSL matrices are column-major
        centers = np.array([e.center for e in eyes], np.float32)
        rotations = np.array([np.asarray(e.rotation).T for e in eyes], np.float32)

        ctx, fbo = self._ctx, self._fbo
        with ctx:
            self._ensure_face_buffers(len(v))
            normals = self._normals(v)
            # Outward winding iff the vector area faces the camera (at the origin).
            outward = 1.0 if float(normals.sum(axis=0) @ -v.mean(axis=0)) >= 0.0 else -1.0
            self._drape_lids(v, normals, eyes, outward)
            self._face_pos.write(v)
            self._face_nrm.write(normals)
            self._update_fills(v)
            self._update_shades(v)
            self._update_lash_lines(v, normals)
            for prog in (self._face_prog, self._eye_prog, self._fill_prog, self._shade_prog, self._lash_prog):
                prog["u_proj"].write(proj_bytes)
            self._eye_prog["u_center"].write(centers)
            self._eye_prog["u_rotation"].write(rotations)

            fbo.use()
            # Alpha 0 everywhere: only the fills and eyeballs (alpha 1) mark openings.
            fbo.clear(*palette.unit_rgb(palette.BACKGROUND_RGB), 0.0, depth=0.0)
            ctx.enable_only(moderngl.DEPTH_TEST)

            ctx.depth_func = "1"   # always: the fills set the depth mask for the eyeballs
            self._fill_vao.render(moderngl.TRIANGLES)

            ctx.depth_func = "<"
            self._eye_vao.render(moderngl.TRIANGLES, instances=2)

            # Lid shadows multiplied into the eyeballs (alpha kept); the face covers any spill.
            ctx.disable(moderngl.DEPTH_TEST)
            ctx.enable(moderngl.BLEND)
            ctx.blend_func = moderngl.ZERO, moderngl.SRC_COLOR, moderngl.ZERO, moderngl.ONE
            self._shade_vao.render(moderngl.TRIANGLES)
            ctx.enable_only(moderngl.DEPTH_TEST)

            # Clear depth only (the fbo's colour mask also gates clear), then the face on top.
            fbo.color_mask = (False, False, False, False)
            fbo.clear(depth=1.0)
            fbo.color_mask = (True, True, True, True)
            fbo.use()   # re-applies the colour mask to the GL state
            # The flipped projection shows outward-wound (counter-clockwise from outside)
            # triangles clockwise on screen.
            ctx.front_face = "cw" if outward > 0 else "ccw"
            ctx.enable(moderngl.CULL_FACE | moderngl.BLEND)
            # Back of the skin, lit from its visible side, kept out of the openings.
            ctx.cull_face = "front"
            ctx.blend_func = moderngl.ONE_MINUS_DST_ALPHA, moderngl.DST_ALPHA
            self._face_prog["u_outward"].value = -outward
            self._face_vao.render(moderngl.TRIANGLES)
            # Front of the skin over everything.
            ctx.disable(moderngl.BLEND)
            ctx.cull_face = "back"
            self._face_prog["u_outward"].value = outward
            self._face_vao.render(moderngl.TRIANGLES)
            # Lash lines over the skin, where it is seen (depth tested, both sides).
            ctx.disable(moderngl.CULL_FACE)
            ctx.enable(moderngl.BLEND)
            ctx.blend_func = moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA
            self._lash_vao.render(moderngl.TRIANGLES)
            ctx.disable(moderngl.BLEND)

            # RGBA is the framebuffer's own layout: read as is and dropping alpha on the CPU
            # takes 0.23 ms at 640x480 against 0.52 ms for an RGB read-back.
            fbo.read_into(self._rgba, components=4, alignment=1)
        return cv2.cvtColor(self._rgba, cv2.COLOR_RGBA2RGB)

    def release(self) -> None:
        """Free every GL object and the context (idempotent)."""
        if self._fbo is None:
            return
        with self._ctx:
            self._release_framebuffer()
            objects = [self._face_vao, self._face_pos, self._face_nrm, self._tint_vbo, self._face_ibo]
            objects += [self._shade_vao, self._shade_vbo, self._shade_attr, self._shade_ibo, self._shade_prog]
            objects += [self._lash_vao, self._lash_vbo, self._lash_attr, self._lash_ibo, self._lash_prog]
            objects += [self._eye_vao, self._sphere_vbo, self._sphere_ibo]
            objects += [self._fill_vao, self._fill_vbo, self._fill_attr, self._fill_ibo]
            objects += [self._face_prog, self._eye_prog, self._fill_prog]
            for obj in objects:
                if obj is not None:
                    obj.release()
        self._ctx.release()

    def __enter__(self) -> "AvatarRenderer":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
