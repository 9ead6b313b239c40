"""Privacy: dlib's ResNet face recognition (128-d embeddings, 99.38% on LFW) as the attacker.

Pipeline per image: dlib's HOG frontal face detector (no upsampling, then once
upsampled if nothing was found), the largest face, dlib's 68-point shape predictor,
then the ResNet embedding. Everything ships with `dlib-bin` and
`face_recognition_models`: nothing is downloaded.

Attacks (a frame in which no face is detected is never identified or verified):

    identification  closed-set rank-1: a probe is identified when its nearest gallery
                    embedding (Euclidean, nearest neighbour over all of an identity's
                    embeddings) belongs to its own identity;
                    rate = identified / probes, chance = 1 / identities in the gallery;
                    identities tied at the nearest distance share the hit (1 / their
                    number: a random pick among them, e.g. identical frames)
    verification    share of probes within `SAME_PERSON` (0.6, dlib's threshold) of the
                    embedding of the same frame of the original
    detection       share of probes in which the detector finds any face
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SAME_PERSON = 0.6
#: Gallery distances within this of the nearest are a tie (identical images embed identically).
TIE = 1e-9
ATTACKER = "dlib HOG detector + 68-point shape predictor + ResNet v1 embeddings (face_recognition_models), nearest neighbour"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# Aligned face chips (e.g. 150x150) fill the whole image: a full-frame detector needs a
# margin around the face to find it.
_PAD_BELOW = 300


class GalleryError(ValueError):
    """A gallery folder that cannot be used; the message is one line for the user."""


class Embedder:
    """Face embeddings with dlib (detector, 68-point shape predictor, ResNet)."""

    def __init__(self) -> None:
        import dlib  # heavy and optional (the `eval` extra): imported only when attacking
        import face_recognition_models as models

        self._detector = dlib.get_frontal_face_detector()
        self._shapes = dlib.shape_predictor(models.pose_predictor_model_location())
        self._net = dlib.face_recognition_model_v1(models.face_recognition_model_location())

    def embed(self, rgb: np.ndarray) -> np.ndarray | None:
        """(128,) embedding of the largest face in an RGB uint8 image, or None if none is detected."""
        rgb = np.ascontiguousarray(rgb)
        faces = self._detector(rgb, 0) or self._detector(rgb, 1)
        if not faces:
            return None
        face = max(faces, key=lambda r: r.width() * r.height())
        return np.array(self._net.compute_face_descriptor(rgb, self._shapes(rgb, face)))


def pad_small(rgb: np.ndarray) -> np.ndarray:
    """Images smaller than 300 px get a black margin of half their size on every side."""
    h, w = rgb.shape[:2]
    if max(h, w) >= _PAD_BELOW:
        return rgb
    return np.pad(rgb, ((h // 2, h // 2), (w // 2, w // 2), (0, 0)))


@dataclass
class Gallery:
    """Embeddings with their identity labels, and what was skipped on the way."""

    embeddings: list[np.ndarray] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def add(self, label: str, embedding: np.ndarray | None) -> None:
        if embedding is not None:
            self.embeddings.append(embedding)
            self.labels.append(label)

    @property
    def identities(self) -> list[str]:
        return sorted(set(self.labels))

    def merged(self, other: "Gallery") -> "Gallery":
        return Gallery(self.embeddings + other.embeddings, self.labels + other.labels, self.skipped + other.skipped)


def load_gallery(folder: Path, embedder: Embedder) -> Gallery:
    """One embedding per image of `folder`/NAME/*.jpg (also .jpeg, .png); identity = NAME.

    Raises GalleryError when the folder is missing or has no identity with a detectable
    face; an identity whose images show no detectable face is skipped and recorded.
    """
    import cv2

    if not folder.is_dir():
        raise GalleryError(f"{folder}: gallery folder not found")
    gallery = Gallery()
    people = sorted(p for p in folder.iterdir() if p.is_dir())
    for person in people:
        images = sorted(p for p in person.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        found = 0
        for path in images:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                gallery.skipped.append({"item": str(path), "reason": "not an image OpenCV can read"})
                continue
            embedding = embedder.embed(pad_small(bgr[:, :, ::-1]))
            gallery.add(person.name, embedding)
            found += embedding is not None
        if not found:
            reason = "no images" if not images else "no detectable face in any image"
            gallery.skipped.append({"item": str(person), "reason": reason})
    if not gallery.embeddings:
        raise GalleryError(f"{folder}: no NAME/*.jpg folder with a detectable face ({len(people)} folders)")
    return gallery


def identify(probes: list[np.ndarray | None], truth: list[str], gallery: Gallery, candidates: list[str]) -> dict:
    """Closed-set rank-1 identification of `probes` (None = no face detected) against `gallery`.

    `candidates` are the identities the attacker chooses among: chance = 1 / their
    number. An empty gallery identifies nobody.

    Also "chance_given_answers": the rank-1 of an attacker who gives the same answers in
    a random order, sum_i p_i q_i (p_i: the share of probes that are identity i, q_i: the
    share answered i). When every output looks alike, the attacker answers one identity
    (the gallery face nearest to all of them) whatever the input, and scores that
    identity's share of the probes: this, not 1 / identities, is what no information
    scores then.
    """
    detected = sum(p is not None for p in probes)
    result: dict = {
        "probes": len(probes),
        "detected": detected,
        "identities": len(candidates),
        "gallery_embeddings": len(gallery.embeddings),
        "chance": 1 / len(candidates) if candidates else None,
        "rank1": None,
        "rank1_detected": None,
        "chance_given_answers": None,
        "answers": {},
    }
    if not probes:
        return result
    hits = 0.0
    answers: dict[str, float] = {}
    if gallery.embeddings:
        matrix, labels = np.stack(gallery.embeddings), np.array(gallery.labels)
        for probe, who in zip(probes, truth):
            if probe is not None:
                distance = np.linalg.norm(matrix - probe, axis=1)
                # Identities tied at the nearest distance (identical frames): the attacker
                # picks one of them at random, so a hit counts its expected value.
                nearest = set(labels[distance <= distance.min() + TIE])
                hits += (who in nearest) / len(nearest)
                for label in nearest:
                    answers[str(label)] = answers.get(str(label), 0.0) + 1 / len(nearest)
    truths = {who: truth.count(who) / len(probes) for who in set(truth)}
    result["chance_given_answers"] = sum(share * answers.get(who, 0.0) / len(probes) for who, share in truths.items())
    result["answers"] = answers
    result["rank1"] = hits / len(probes)
    result["rank1_detected"] = hits / detected if detected else None
    return result


def verify(probes: list[np.ndarray | None], originals: list[np.ndarray | None]) -> dict:
    """Share of probes within SAME_PERSON of their own original frame; pairs whose original shows no detectable face do not count."""
    pairs = [(p, o) for p, o in zip(probes, originals) if o is not None]
    same = sum(p is not None and float(np.linalg.norm(p - o)) < SAME_PERSON for p, o in pairs)
    return {"pairs": len(pairs), "share": same / len(pairs) if pairs else None}


def detection(probes: list[np.ndarray | None]) -> dict:
    """Share of probe frames in which dlib detects any face."""
    n = sum(p is not None for p in probes)
    return {"frames": len(probes), "detected": n, "share": n / len(probes) if probes else None}
