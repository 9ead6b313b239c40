"""Known-answer tests of the video IO: decode, H.264 encode, atomic output.

Synthetic videos are written with PyAV directly, not with the code under test.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import DATA

from dmask_rt.video.decode import VideoInputError, VideoReader, check_size, open_camera
from dmask_rt.video.encode import VideoWriter

VIDEOS = DATA / "videos"


def write_video(path: Path, frames: list[np.ndarray], *, time_base: Fraction = Fraction(1, 30), pts: list[int] | None = None,
                rotation: int = 0) -> None:
    """An H.264 file of `frames` (even sizes) at `pts` (default 0, 1, 2, ...)."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = stream.codec_context.time_base = time_base
        if rotation:
            stream.set_display_rotation(rotation)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = (pts[i] if pts else i), time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def gradient(width: int, height: int, shift: int = 0) -> np.ndarray:
    """A smooth RGB test picture that survives lossy coding (shift moves it per frame)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([(x * 255 // max(1, width - 1) + shift) % 256, y * 255 // max(1, height - 1), np.full_like(x, 128)], -1).astype(np.uint8)


def decode_all(path: Path) -> tuple[list[np.ndarray], list[float]]:
    with VideoReader(path) as reader:
        frames = list(reader)
    return [f.rgb for f in frames], [f.time for f in frames]


def transcode(src: Path, dst: Path) -> None:
    with VideoReader(src) as reader, VideoWriter(dst, reader.time_base, reader.rate) as writer:
        for frame in reader:
            writer.write(frame.rgb, frame.pts)


@pytest.mark.parametrize("clip", [
    "p09_webcam.mp4",                 # constant 30 fps
    "p09_cartoon_then_face_vfr.mov",  # HEVC, variable frame rate
    "p07_talking.mp4",                # starts at 33 ms, frames dropped (uneven steps)
])
def test_round_trip_keeps_frames_size_and_timestamps(clip: str, tmp_path: Path) -> None:
    src, dst = VIDEOS / clip, tmp_path / "copy.mp4"
    transcode(src, dst)
    before, times_before = decode_all(src)
    after, times_after = decode_all(dst)
    assert len(after) == len(before)
    assert after[0].shape == before[0].shape
    assert times_after == times_before  # exact: the pts are passed through in the input's time base
    # Same picture, up to H.264 loss (colour matrix and range must match, or this is ~10+).
    assert np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(before[::10], after[::10])]) < 3


def test_vfr_timestamps_known_answer() -> None:
    # Frame intervals of the VFR clip as the container stores them (pts * 1/12288 s).
    with VideoReader(VIDEOS / "p09_cartoon_then_face_vfr.mov") as reader:
        assert reader.time_base == Fraction(1, 12288)
        pts = [f.pts for f in reader]
    assert len(pts) == 169
    assert pts[:4] == [0, 168, 680, 1192]
    assert set(np.diff(pts)) == {168, 184, 409, 410, 512}


def test_synthetic_vfr_pts_survive(tmp_path: Path) -> None:
    pts = [0, 1000, 1500, 4000, 4010, 9000]
    write_video(tmp_path / "in.mp4", [gradient(64, 48, 10 * i) for i in range(6)], time_base=Fraction(1, 10000), pts=pts)
    transcode(tmp_path / "in.mp4", tmp_path / "out.mp4")
    _, times = decode_all(tmp_path / "out.mp4")
    assert times == [p / 10000 for p in pts]


def test_failure_mid_encode_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(out, Fraction(1, 30), Fraction(30)) as writer:
            for i in range(5):
                writer.write(gradient(64, 48, i), i)
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []  # neither the video nor its temporary file


def test_writer_with_no_frames_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no frames"):
        with VideoWriter(tmp_path / "out.mp4", Fraction(1, 30), Fraction(30)):
            pass
    assert list(tmp_path.iterdir()) == []


def test_output_appears_only_when_done(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    with VideoWriter(out, Fraction(1, 30), Fraction(30)) as writer:
        writer.write(gradient(64, 48), 0)
        assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_odd_size_is_padded_by_repeating_the_edge(tmp_path: Path) -> None:
    # H.264 4:2:0 codes only even sizes: 161x91 becomes 162x92, edge row/column repeated.
    rgb = gradient(161, 91)
    with VideoWriter(tmp_path / "odd.mp4", Fraction(1, 30), Fraction(30)) as writer:
        writer.write(rgb, 0)
    (out,), _ = decode_all(tmp_path / "odd.mp4")
    assert out.shape == (92, 162, 3)
    assert np.abs(out[:91, :161].astype(int) - rgb).mean() < 3
    assert np.abs(out[:, 161].astype(int) - out[:, 160]).mean() < 3  # repeated, not black
    assert np.abs(out[91].astype(int) - out[90]).mean() < 3


def test_later_frames_of_another_size_are_scaled_to_the_first(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "out.mp4", Fraction(1, 30), Fraction(30)) as writer:
        writer.write(gradient(64, 48), 0)
        writer.write(gradient(128, 96), 1)
    frames, _ = decode_all(tmp_path / "out.mp4")
    assert [f.shape for f in frames] == [(48, 64, 3)] * 2
    assert np.abs(frames[1].astype(int) - frames[0]).mean() < 4


def test_display_rotation_is_applied(tmp_path: Path) -> None:
    # Phones store the picture sideways plus a rotation: readers must see it upright.
    rgb = np.zeros((32, 64, 3), np.uint8)
    rgb[:8, :8] = 255  # white block top-left
    write_video(tmp_path / "rot.mp4", [rgb], rotation=90)  # 90 degrees counter-clockwise
    (out,), _ = decode_all(tmp_path / "rot.mp4")
    assert out.shape == (64, 32, 3)
    rows, cols = np.nonzero(out[..., 0] > 128)
    assert rows.min() >= 56 and cols.max() < 8  # the block went to the bottom-left corner


def test_reader_gives_first_frame_size_count_and_rate() -> None:
    with VideoReader(VIDEOS / "p09_webcam.mp4") as reader:
        assert (reader.width, reader.height, reader.frames, reader.rate) == (640, 360, 72, 30)
        frames = list(reader)
        with pytest.raises(RuntimeError, match="once"):
            list(reader)
    assert [f.index for f in frames] == list(range(72))
    assert all(f.rgb.dtype == np.uint8 and f.rgb.shape == (360, 640, 3) for f in frames)


def test_device_source_through_an_ffmpeg_input_format() -> None:
    # The camera path is VideoReader(device, format="v4l2"); no camera here, so the same
    # code is driven by ffmpeg's lavfi test source.
    with VideoReader("testsrc=size=64x48:rate=10:duration=1", format="lavfi") as reader:
        frames = list(reader)
    assert len(frames) == 10 and frames[0].rgb.shape == (48, 64, 3)
    assert [round(f.time, 3) for f in frames[:3]] == [0.0, 0.1, 0.2]


def test_missing_camera_is_a_clear_error() -> None:
    with pytest.raises(VideoInputError, match="no such camera device"):
        open_camera("/dev/video-does-not-exist")


@pytest.mark.parametrize(("width", "height", "ok"), [
    (7680, 4320, True), (4320, 7680, True), (1, 1, True),
    (7681, 16, False), (16, 7682, False), (4321, 4321, False), (0, 480, False), (640, 0, False),
])
def test_size_limit_is_8k_in_either_orientation(width: int, height: int, ok: bool) -> None:
    if ok:
        check_size(width, height)
    else:
        with pytest.raises(VideoInputError):
            check_size(width, height)
