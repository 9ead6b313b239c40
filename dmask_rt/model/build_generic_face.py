"""Build the generic face (`data/generic_face.npz`) from many people's tracked faces.

    python -m dmask_rt.model.build_generic_face [DATA_DIR]

Steps, each a function below:
1. Track every person in the sources (real videos and identity photos) and keep each
   frame's 3D landmarks: the 468 mesh points plus both iris centres, x and y in pixels
   and the mesh model's relative depth z on the same scale.
2. Generalised Procrustes analysis: align all shapes by similarity transforms and
   average each person's frames at rest (lips together, eyes open), then average the people with equal weight. Averaging
   many people is what makes the template nobody: the fit will never add a patient's
   face shape to it.
3. Make the mean mirror-symmetric and put it in the head frame: origin between the iris
   centres, x toward the subject's left, y down as the cameras saw it, z into the face, scaled so
   the iris centres are 63 mm apart (the adult mean interpupillary distance).
4. Expression modes: PCA of each frame's deviation from its OWN person's mean (after a
   rigid alignment on the upper face), so the modes hold motion and no identity. The lid
   margins are zeroed here: the eyelid model (`eyelid.py`) owns them.
5. The mesh's triangles from MediaPipe's tessellation edges (`face_mesh_connections.py`
   in the same pinned wheel as the models), and the vertex set the fit uses.
"""
from __future__ import annotations

import argparse
import ast
import itertools
import tempfile
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

import av
import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from ..assets import download_wheel
from ..track.tracker import FaceTracker
from .eyeball import IRIS_DEPTH_MM
from .mesh_indices import EYE_CORNERS, IRIS_CENTRE, LOWER_LID, N_MESH, UPPER_LID
from .generic_face import DATA_FILE, N_EXPRESSION

INTERPUPILLARY_MM = 63.0
# Rest-state thresholds, as fractions of the iris distance (measured on the sources: lids
# of open eyes stand 7-11% apart, closed lips under 4%).
MAX_LIP_GAP = 0.04
MIN_LID_GAP = 0.06
VIDEO_STEP = 2
VIDEOS = (
    "p01_gaze_left_right.mp4", "p02_gaze_wink.mp4", "p03_glasses_blinks.mp4",
    "p04_eye_closure_look_down.mp4", "p05_studio_mouth.mp4", "p06_talking_blinks.mp4",
    "p07_talking.mp4", "p08_low_res_256.mp4", "p09_webcam.mp4",
)
CONNECTIONS = "mediapipe/python/solutions/face_mesh_connections.py"


def shape_of(landmarks) -> np.ndarray:
    """(470, 3) mesh points then right and left iris centres: x, y, depth in pixels."""
    idx = list(range(N_MESH)) + list(IRIS_CENTRE)
    return np.column_stack([landmarks.points[idx], landmarks.depth[idx]]).astype(np.float64)


def collect_shapes(data_dir: Path) -> dict[str, list[np.ndarray]]:
    """Tracked 3D shapes per person, from the dev videos and the re-identification photos."""
    tracker = FaceTracker()
    people: dict[str, list[np.ndarray]] = defaultdict(list)
    for name in VIDEOS:
        person = name.split("_")[0]
        tracker.reset()
        with av.open(str(data_dir / "videos" / name)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                lm = tracker.track(frame.to_ndarray(format="rgb24"))
                if lm is not None and i % VIDEO_STEP == 0:
                    people[person].append(shape_of(lm))
    for photo in sorted((data_dir / "reid").glob("*/*/*.jpg")):
        tracker.reset()
        image = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
        pad = max(image.shape[:2]) // 2  # aligned chips fill the frame; the detector wants context
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        lm = tracker.track(image)
        if lm is not None:
            people[photo.parent.name].append(shape_of(lm))
    return dict(people)


def similarity(src: np.ndarray, dst: np.ndarray, idx: np.ndarray | None = None) -> tuple[float, np.ndarray, np.ndarray]:
    """(s, R, t) minimising |s R src + t - dst|^2 over points `idx` (Umeyama 1991)."""
    a = src if idx is None else src[idx]
    b = dst if idx is None else dst[idx]
    ma, mb = a.mean(0), b.mean(0)
    a0, b0 = a - ma, b - mb
    u, sig, vt = np.linalg.svd(b0.T @ a0)
    d = np.ones(3)
    d[2] = np.sign(np.linalg.det(u @ vt))
    rot = u @ np.diag(d) @ vt
    scale = (sig * d).sum() / (a0**2).sum()
    return scale, rot, mb - scale * rot @ ma


def similarity_align(src: np.ndarray, dst: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
    """All of `src` mapped by the similarity that best aligns its points `idx` to `dst`."""
    scale, rot, t = similarity(src, dst, idx)
    return scale * src @ rot.T + t


def generalised_procrustes(shapes: list[np.ndarray], rounds: int = 4) -> np.ndarray:
    """Mean shape of `shapes` under similarity alignment (iterated to a fixed point)."""
    mean = shapes[0]
    for _ in range(rounds):
        mean = np.mean([similarity_align(s, mean) for s in shapes], axis=0)
    return mean


def mirror_pairs(shape: np.ndarray) -> np.ndarray:
    """For each vertex of a head-frame shape, its mirror partner across the midline x = 0.

    An optimal one-to-one matching of the vertices to their mirror images; the cost is
    made symmetric (i<->j costs the same both ways) so the matching pairs vertices.
    """
    mirrored = shape * np.array([-1.0, 1.0, 1.0])
    d = np.linalg.norm(shape[:, None, :] - mirrored[None, :, :], axis=2)
    _, partner = linear_sum_assignment(d + d.T)
    return partner


def to_head_frame(mean: np.ndarray, shapes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, float]:
    """(origin, rotation rows, scale) putting `mean` in the head frame described above.

    x runs along the line between the iris centres (which fixes yaw and roll); "down" is
    the camera's own down averaged over all tracked frames, seen from the face (which
    fixes pitch: people facing a camera read as pitch 0).
    """
    iris_r, iris_l = mean[N_MESH], mean[N_MESH + 1]
    origin = (iris_r + iris_l) / 2
    x = (iris_l - iris_r) / np.linalg.norm(iris_l - iris_r)
    down = np.mean([similarity(mean, s)[1].T @ np.array([0.0, 1.0, 0.0]) for s in shapes], axis=0)
    y = down - x * (x @ down)
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    scale = INTERPUPILLARY_MM / np.linalg.norm(iris_l - iris_r)
    return origin, np.stack([x, y, z]), scale


def symmetrise(shape: np.ndarray) -> np.ndarray:
    """Average a head-frame shape with its mirror image (x -> -x), vertex by partner vertex."""
    pairs = mirror_pairs(shape[:N_MESH])
    if not np.array_equal(pairs[pairs], np.arange(N_MESH)):
        raise RuntimeError("mirror pairing of the mesh is not an involution")
    mesh = shape[:N_MESH]
    sym = (mesh + mesh[pairs] * np.array([-1.0, 1.0, 1.0])) / 2
    iris = shape[N_MESH:].copy()
    iris_sym = (iris + iris[::-1] * np.array([-1.0, 1.0, 1.0])) / 2
    return np.vstack([sym, iris_sym])


def expression_modes(
    people: dict[str, list[np.ndarray]],
    person_means: dict[str, np.ndarray],
    frame: tuple[np.ndarray, np.ndarray, float],
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(k, 468, 3) modes scaled to one standard deviation, and the explained variance share.

    `person_means` are each person's mean shape, already aligned to the global mean
    that `frame` describes. Each frame is aligned to its person's mean on the upper face
    (which moves least), turned into the head frame, and its deviation from that mean taken. People
    are weighted equally whatever their frame count.
    """
    origin, rot, scale = frame
    lid = np.concatenate([UPPER_LID.ravel(), LOWER_LID.ravel(), EYE_CORNERS.ravel()])
    rows, weights = [], []
    for person, shapes in people.items():
        if len(shapes) < 10:  # photos: no motion to learn from
            continue
        own_mean = person_means[person]
        upper = np.flatnonzero(own_mean[:N_MESH, 1] < own_mean[4, 1])  # above the nose tip
        for s in shapes:
            dev = (similarity_align(s, own_mean, upper) - own_mean)[:N_MESH] @ rot.T * scale
            dev[lid] = 0.0
            rows.append(dev.ravel())
            weights.append(1.0 / len(shapes))
    x = np.array(rows) * np.sqrt(np.array(weights) / np.sum(weights))[:, None]
    _, sig, vt = np.linalg.svd(x, full_matrices=False)
    explained = sig**2 / (sig**2).sum()
    return (vt[:k] * sig[:k, None]).reshape(k, N_MESH, 3), explained[:k]


def mesh_connections(wheel: Path) -> dict[str, list[tuple[int, int]]]:
    """The edge sets of MediaPipe's face_mesh_connections.py, read as data (not imported)."""
    with zipfile.ZipFile(wheel) as z:
        tree = ast.parse(z.read(CONNECTIONS).decode())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and node.value.args:
            try:
                out[node.targets[0].id] = list(ast.literal_eval(node.value.args[0]))
            except ValueError:
                continue  # unions of other sets, e.g. FACEMESH_CONTOURS
    return out


def triangles_from_edges(edges: list[tuple[int, int]]) -> np.ndarray:
    """The faces of a triangulated surface given only its edges.

    Every face is a 3-cycle of edges; the only other 3-cycles are "separating" triangles
    around a low-degree vertex, and their three edges each end up in three cycles, which
    no edge of a real surface does (at most two faces share an edge). Those are dropped.
    """
    edge_set = {tuple(sorted(e)) for e in edges}
    adj: dict[int, set[int]] = defaultdict(set)
    for a, b in edge_set:
        adj[a].add(b)
        adj[b].add(a)
    cycles = {tuple(sorted((a, b, c))) for a, b in edge_set for c in adj[a] & adj[b]}
    use = Counter(e for tri in cycles for e in itertools.combinations(tri, 2))
    faces = [tri for tri in cycles if not all(use[e] > 2 for e in itertools.combinations(tri, 2))]
    return np.array(sorted(faces), dtype=np.int32)


def orient_outward(triangles: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Wind all triangles alike (every shared edge runs both ways), normals out of the face.

    Orientation spreads from one triangle across shared edges (breadth first), so folded
    spots such as the sides of the nose agree with their neighbours; then the whole mesh
    is flipped if most of its area faces into the head (+z) rather than the camera.
    """
    edge_faces: dict[tuple[int, int], list[int]] = defaultdict(list)
    for f, tri in enumerate(triangles):
        for a, b in ((0, 1), (1, 2), (2, 0)):
            edge_faces[tuple(sorted((tri[a], tri[b])))].append(f)
    out = triangles.copy()
    done = np.zeros(len(out), bool)
    for seed in range(len(out)):
        if done[seed]:
            continue
        done[seed] = True
        queue = [seed]
        while queue:
            f = queue.pop()
            tri = out[f]
            for a, b in ((tri[0], tri[1]), (tri[1], tri[2]), (tri[2], tri[0])):
                for g in edge_faces[tuple(sorted((a, b)))]:
                    if done[g]:
                        continue
                    other = list(out[g])
                    i = other.index(a)
                    if other[(i + 1) % 3] == b:  # same direction as in f: flip g
                        out[g] = out[g][[0, 2, 1]]
                    done[g] = True
                    queue.append(g)
    a, b, c = (mean[out[:, i]] for i in range(3))
    if np.cross(b - a, c - a)[:, 2].sum() > 0:
        out = out[:, [0, 2, 1]]
    return out


def lip_gap(shape: np.ndarray) -> float:
    """Inner-lip gap at the midline as a fraction of the iris distance."""
    return float(np.linalg.norm(shape[13] - shape[14]) / np.linalg.norm(shape[N_MESH] - shape[N_MESH + 1]))


def at_rest(shapes: list[np.ndarray]) -> list[np.ndarray]:
    """The frames showing the template's rest state (lips together, eyes open).

    A person never seen at rest (photos are mostly smiles) contributes the third of
    their frames with the least open mouth.
    """
    def lids_open(s: np.ndarray) -> bool:
        iod = np.linalg.norm(s[N_MESH] - s[N_MESH + 1])
        return np.linalg.norm(s[UPPER_LID] - s[LOWER_LID], axis=2).mean(axis=1).min() / iod > MIN_LID_GAP

    rest = [s for s in shapes if lip_gap(s) < MAX_LIP_GAP and lids_open(s)]
    return rest or sorted(shapes, key=lip_gap)[: max(1, len(shapes) // 3)]


def build(data_dir: Path, out: Path) -> None:
    people = collect_shapes(data_dir)
    own_means = {p: generalised_procrustes(at_rest(s)) for p, s in people.items()}
    mean = generalised_procrustes(list(own_means.values()))
    person_means = {p: similarity_align(m, mean) for p, m in own_means.items()}
    frame = to_head_frame(mean, [s for shapes in people.values() for s in shapes])
    origin, rot, scale = frame
    head = symmetrise((mean - origin) @ rot.T * scale)
    expression, explained = expression_modes(people, person_means, frame, N_EXPRESSION)
    eye_centres = head[N_MESH:] + np.array([0.0, 0.0, IRIS_DEPTH_MM])
    with tempfile.TemporaryDirectory() as tmp:
        conn = mesh_connections(download_wheel(Path(tmp)))
    triangles = orient_outward(triangles_from_edges(conn["FACEMESH_TESSELATION"]), head)
    contour_sets = ("FACEMESH_LIPS", "FACEMESH_LEFT_EYE", "FACEMESH_RIGHT_EYE", "FACEMESH_LEFT_EYEBROW",
                    "FACEMESH_RIGHT_EYEBROW", "FACEMESH_FACE_OVAL", "FACEMESH_NOSE")
    fit_indices = np.array(sorted({v for name in contour_sets for e in conn[name] for v in e}), dtype=np.int32)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        mean=head[:N_MESH].astype(np.float32),
        expression=expression.astype(np.float32),
        eye_centres=eye_centres.astype(np.float32),
        triangles=triangles,
        fit_indices=fit_indices,
        people=np.array(sorted(people)),
        frames_per_person=np.array([len(people[p]) for p in sorted(people)]),
        explained_variance=explained.astype(np.float32),
    )
    print(f"{len(people)} people, {sum(map(len, people.values()))} shapes, {len(triangles)} triangles, "
          f"{len(fit_indices)} fit vertices; expression variance explained "
          f"{explained.sum():.0%} by {N_EXPRESSION} modes -> {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_data = Path(__file__).resolve().parents[3] / "shared" / "data"
    parser.add_argument("data_dir", nargs="?", type=Path, default=default_data)
    parser.add_argument("-o", "--out", type=Path, default=Path(__file__).parent / "data" / DATA_FILE)
    args = parser.parse_args()
    build(args.data_dir, args.out)


if __name__ == "__main__":
    main()
