"""Video output: H.264 (libx264, yuv420p) in .mp4/.mov, keeping the input's timestamps.

Sizes: the output has the size of the first frame written. Later frames of
another size (a camera or stream that changes resolution) are scaled to it.
H.264 4:2:0 cannot code an odd width or height (chroma is subsampled 2x2 and
the SPS crop works in 2-pixel units), so an odd side is padded by repeating
its last row/column: the output is then 1 pixel wider/taller than the input,
with no black edge and no resampling of the picture.
"""

from __future__ import annotations

import os
from fractions import Fraction

import av
import cv2
import numpy as np

from .decode import FALLBACK_RATE
from .outfile import AtomicFile, AtomicOutput, check_output_path

SUFFIXES = (".mp4", ".mov")
# Measured at crf 20 on this 2-core class of machine, 512x512 / 960x540 real video:
# ultrafast 2.0 / 3.9 ms a frame, veryfast 3.9 / 7.7 ms, at 1/3 of the bitrate.
# veryfast keeps a file job far above real time and its files small.
PRESET = "veryfast"
CRF = 20


class H264Encoder:
    """Encodes RGB frames into a new H.264 stream of an open PyAV output container.

    The stream is created on the first frame, which fixes the output size.
    `time_base` is the unit of the `pts` passed to `write` (the input's), so
    variable frame rate survives unchanged.
    """

    def __init__(self, container: av.container.OutputContainer, time_base: Fraction, rate: Fraction | None, *, preset: str = PRESET, crf: int = CRF) -> None:
        self._container = container
        self._time_base = time_base
        self._rate = rate or FALLBACK_RATE  # x264's rate control needs a rate, even for VFR
        self._options = {"preset": preset, "crf": str(crf)}
        self._stream: av.video.stream.VideoStream | None = None
        self._size: tuple[int, int] | None = None  # (width, height) before padding
        self.frames = 0

    def _open(self, width: int, height: int) -> av.video.stream.VideoStream:
        stream = self._container.add_stream("libx264", rate=self._rate, options=self._options)
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = "yuv420p"
        stream.time_base = stream.codec_context.time_base = self._time_base
        # PyAV converts RGB with swscale's default BT.601 limited-range matrix:
        # tag it, or players guess BT.709 for HD sizes and shift the colours.
        stream.codec_context.colorspace = 6  # AVCOL_SPC_SMPTE170M
        stream.codec_context.color_range = 1  # AVCOL_RANGE_MPEG
        self._size = (width, height)
        return stream

    def write(self, rgb: np.ndarray, pts: int) -> None:
        """Encode one (h, w, 3) uint8 RGB frame shown at `pts` (strictly increasing)."""
        height, width = rgb.shape[:2]
        if self._stream is None:
            self._stream = self._open(width, height)
        if (width, height) != self._size:
            rgb = cv2.resize(rgb, self._size, interpolation=cv2.INTER_AREA)
            width, height = self._size
        if width % 2 or height % 2:
            rgb = cv2.copyMakeBorder(rgb, 0, height % 2, 0, width % 2, cv2.BORDER_REPLICATE)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts, frame.time_base = pts, self._time_base
        self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def flush(self) -> None:
        """Drain the frames x264 still holds (lookahead, B-frames) into the container."""
        if self._stream is not None:
            self._container.mux(self._stream.encode(None))


class VideoWriter(AtomicOutput):
    """An H.264 video file that appears at `path` only if the `with` block succeeds.

    It is written to a hidden temporary file in the same directory and renamed
    on success; on any exception the temporary file is deleted.
    """

    def __init__(self, path: str | os.PathLike[str], time_base: Fraction, rate: Fraction | None) -> None:
        self.path = check_output_path(path, SUFFIXES)
        self._file = AtomicFile(self.path)
        try:
            self._container = av.open(str(self._file.tmp), "w")
        except BaseException:
            self._file.discard()
            raise
        self._encoder = H264Encoder(self._container, time_base, rate)

    def write(self, rgb: np.ndarray, pts: int) -> None:
        """Encode one RGB frame at `pts` (in the `time_base` given to the constructor)."""
        self._encoder.write(rgb, pts)

    @property
    def frames(self) -> int:
        """Frames written so far."""
        return self._encoder.frames

    def close(self) -> None:
        """Finish the file and move it to its final path."""
        try:
            if self._encoder.frames == 0:
                raise ValueError(f"{self.path}: no frames were written")
            self._encoder.flush()
            self._container.close()
        except BaseException:
            self.abort()
            raise
        self._file.commit()

    def abort(self) -> None:
        """Drop everything written so far; nothing appears at the final path."""
        try:
            self._container.close()
        except (av.error.FFmpegError, OSError):
            pass  # the file is being thrown away: a muxer complaint changes nothing
        finally:
            self._file.discard()

