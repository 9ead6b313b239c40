"""Model files for the face tracker: fetch them once, then find them verified.

The three TFLite models ship inside the ``mediapipe==0.10.21`` wheel (Apache-2.0).
``fetch`` downloads that one wheel through pip (so from the configured package index,
never from any other host), extracts the three files, checks their SHA-256 and installs
them atomically into the models directory. Nothing here imports mediapipe.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

MEDIAPIPE_VERSION = "0.10.21"
# Pinned so every machine resolves the very same wheel, whatever its own platform.
WHEEL_PLATFORM = "manylinux_2_28_x86_64"
WHEEL_PYTHON = "3.11"

# name -> (path inside the wheel, SHA-256 of the file)
MODELS: dict[str, tuple[str, str]] = {
    "face_detection_short_range": (
        "mediapipe/modules/face_detection/face_detection_short_range.tflite",
        "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
    ),
    "face_landmark": (
        "mediapipe/modules/face_landmark/face_landmark.tflite",
        "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
    ),
    "iris_landmark": (
        "mediapipe/modules/iris_landmark/iris_landmark.tflite",
        "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f",
    ),
}


class ModelsMissing(FileNotFoundError):
    """A model file is absent or does not have the expected content."""


def default_models_dir() -> Path:
    """The models directory: ``$DMASK_MODELS`` if set, else ``~/.cache/dmask/models``."""
    env = os.environ.get("DMASK_MODELS")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dmask" / "models"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_name(name: str) -> str:
    return f"{name}.tflite"


def _is_valid(path: Path, sha256: str) -> bool:
    return path.is_file() and _sha256(path.read_bytes()) == sha256


def model_path(name: str, models_dir: Path | None = None) -> Path:
    """Path of model ``name`` (e.g. ``"face_landmark"``) after checking its SHA-256.

    Raises ModelsMissing, telling the user to run ``dmask setup``, if the file is
    absent or altered.
    """
    name = name.removesuffix(".tflite")
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    folder = Path(models_dir) if models_dir is not None else default_models_dir()
    path = folder / _file_name(name)
    if not _is_valid(path, MODELS[name][1]):
        state = "has unexpected content" if path.exists() else "is missing"
        raise ModelsMissing(
            f"face model {path} {state}. Run `dmask setup` (or `python -m dmask_rt.assets`) "
            f"to fetch the models into {folder}."
        )
    return path


def download_wheel(into: Path) -> Path:
    """Download the pinned mediapipe wheel with pip into ``into``; return its path."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", f"mediapipe=={MEDIAPIPE_VERSION}",
        "--platform", WHEEL_PLATFORM, "--python-version", WHEEL_PYTHON, "-d", str(into),
    ]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wheels = sorted(into.glob(f"mediapipe-{MEDIAPIPE_VERSION}-*.whl"))
    if not wheels:
        raise RuntimeError(f"pip download left no mediapipe {MEDIAPIPE_VERSION} wheel in {into}")
    return wheels[0]


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see either the old file or the whole new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the models are not secret
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fetch(dest: Path | None = None) -> Path:
    """Install the three verified model files into ``dest`` (default models dir).

    Skips the download when every file is already there with the right hash.
    Returns the models directory.
    """
    folder = Path(dest) if dest is not None else default_models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    todo = {n: spec for n, spec in MODELS.items() if not _is_valid(folder / _file_name(n), spec[1])}
    if not todo:
        return folder
    with tempfile.TemporaryDirectory(prefix="dmask-wheel-") as tmp:
        wheel = download_wheel(Path(tmp))
        with zipfile.ZipFile(wheel) as zf:
            blobs = {n: zf.read(member) for n, (member, _) in todo.items()}
    # Verify everything before installing anything.
    for n, data in blobs.items():
        got, want = _sha256(data), todo[n][1]
        if got != want:
            raise RuntimeError(f"{todo[n][0]} in the downloaded wheel has SHA-256 {got}, expected {want}")
    for n, data in blobs.items():
        _write_atomic(folder / _file_name(n), data)
    return folder


def main() -> None:
    """Fetch the models and print where they are."""
    print(fetch())


if __name__ == "__main__":
    main()
