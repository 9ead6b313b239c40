"""`dmask preview`: a window showing original | avatar live, from a file or a camera.

The Masker runs in a worker thread. Its renderer has its own (offscreen) GL
context, which must not meet the window's: GL contexts are current per thread,
so the window's context lives on the main thread (where glfw needs it) and the
Masker's on the worker. The worker also overlaps masking with display.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from pathlib import Path

import cv2
import glfw
import moderngl
import numpy as np

from .video.compose import side_by_side
from .video.decode import VideoReader
from .video.outfile import write_atomically

VERTEX_SHADER = """
#version 330
in vec2 position;
out vec2 uv;
void main() {
    // Row 0 of the uploaded image is its top row: flip y.
    uv = vec2(position.x + 1.0, 1.0 - position.y) * 0.5;
    gl_Position = vec4(position, 0.0, 1.0);
}
"""
FRAGMENT_SHADER = """
#version 330
uniform sampler2D image;
in vec2 uv;
out vec4 color;
void main() {
    color = vec4(texture(image, uv).rgb, 1.0);
}
"""
SCREEN_FILL = 0.9  # largest share of the monitor the window may take
_END = object()  # worker -> window: the video is over


class DisplayError(RuntimeError):
    """No display to open a window on; the message is one line for the user."""


class _MaskerThread(threading.Thread):
    """Reads frames, masks them and queues (time, original | avatar) for the window."""

    def __init__(self, reader: VideoReader, frames: queue.Queue) -> None:
        super().__init__(name="dmask-preview-masker", daemon=True)
        self.reader, self.frames, self.stop = reader, frames, threading.Event()

    def run(self) -> None:
        try:
            from .pipeline import Masker  # loads models: keep it off the window's thread

            with Masker() as masker:
                for frame in self.reader:
                    if self.stop.is_set():
                        return
                    result = masker.process(frame.rgb)
                    self._put((frame.time, side_by_side(frame.rgb, result.image)))
            self._put(_END)
        except BaseException as err:  # handed to the main thread, which raises it
            self._put(err)

    def _put(self, item: object) -> None:
        # Bounded queue (no backlog, no growing latency), without blocking forever once stopped.
        while not self.stop.is_set():
            try:
                self.frames.put(item, timeout=0.1)
                return
            except queue.Full:
                pass


class _Window:
    """A glfw window that shows one RGB image, letterboxed, with moderngl."""

    def __init__(self, width: int, height: int, title: str) -> None:
        glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 3)
        glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
        glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
        glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, True)
        scale = 1.0
        monitor = glfw.get_primary_monitor()
        if monitor:
            mode = glfw.get_video_mode(monitor)
            scale = min(1.0, SCREEN_FILL * mode.size.width / width, SCREEN_FILL * mode.size.height / height)
        self.handle = glfw.create_window(max(1, round(width * scale)), max(1, round(height * scale)), title, None, None)
        glfw.make_context_current(self.handle)
        glfw.swap_interval(0)  # pacing is done by frame timestamps, not vsync
        glfw.set_key_callback(self.handle, _close_on_escape_or_q)
        glfw.set_framebuffer_size_callback(self.handle, lambda *_: self.draw())
        self.ctx = moderngl.create_context(require=330)
        program = self.ctx.program(vertex_shader=VERTEX_SHADER, fragment_shader=FRAGMENT_SHADER)
        quad = self.ctx.buffer(np.array([-1, -1, 1, -1, -1, 1, 1, 1], dtype="f4").tobytes())
        self.quad = self.ctx.vertex_array(program, [(quad, "2f", "position")])
        self.texture: moderngl.Texture | None = None

    def show(self, rgb: np.ndarray) -> None:
        """Upload a new image and draw it."""
        height, width = rgb.shape[:2]
        if self.texture is None or self.texture.size != (width, height):
            if self.texture is not None:
                self.texture.release()
            self.texture = self.ctx.texture((width, height), 3)
            self.texture.filter = (moderngl.LINEAR, moderngl.LINEAR)
        self.texture.write(np.ascontiguousarray(rgb), alignment=1)
        self.draw()

    def draw(self) -> None:
        """Draw the current image into the back buffer, fitted to the window, and show it."""
        self._render()
        glfw.swap_buffers(self.handle)

    def _render(self) -> None:
        fb_width, fb_height = glfw.get_framebuffer_size(self.handle)
        self.ctx.viewport = (0, 0, fb_width, fb_height)
        self.ctx.clear(0.0, 0.0, 0.0)
        if self.texture is None or not fb_width or not fb_height:
            return
        width, height = self.texture.size
        scale = min(fb_width / width, fb_height / height)
        w, h = round(width * scale), round(height * scale)
        self.ctx.viewport = ((fb_width - w) // 2, (fb_height - h) // 2, w, h)
        self.texture.use(0)
        self.quad.render(moderngl.TRIANGLE_STRIP)

    def screenshot(self) -> np.ndarray:
        """The window's pixels as (h, w, 3) RGB, read back from a fresh render (glReadPixels)."""
        self._render()
        fb_width, fb_height = glfw.get_framebuffer_size(self.handle)
        pixels = self.ctx.screen.read(viewport=(0, 0, fb_width, fb_height), components=3, alignment=1)
        return np.frombuffer(pixels, np.uint8).reshape(fb_height, fb_width, 3)[::-1]

    def should_close(self) -> bool:
        return bool(glfw.window_should_close(self.handle))


def _close_on_escape_or_q(window, key: int, scancode: int, action: int, mods: int) -> None:
    if action == glfw.PRESS and key in (glfw.KEY_ESCAPE, glfw.KEY_Q):
        glfw.set_window_should_close(window, True)


def run(reader: VideoReader, *, max_frames: int | None = None, screenshot: Path | None = None, realtime: bool = True) -> int:
    """Show `reader` masked until it ends, the window is closed (Esc, q) or `max_frames` were shown.

    `realtime` paces frames by their timestamps (files); a camera paces itself.
    `screenshot` saves the last window contents as PNG: it shows the original
    video, so it is written only when asked for. Returns the frames shown.
    """
    glfw.ERROR_REPORTING = "raise"
    frames: queue.Queue = queue.Queue(maxsize=2)
    worker = _MaskerThread(reader, frames)
    try:
        try:
            glfw.init()
            window = _Window(2 * reader.width, reader.height, f"dmask preview - {Path(reader.source).name}")
        except glfw.GLFWError as err:
            # pyGLFW words it "(65550) b'X11: The DISPLAY environment variable is missing'"
            reason = re.sub(r"^\(\d+\) b?'(.*)'$", r"\1", str(err))
            raise DisplayError(f"cannot open a window ({reason}); set DISPLAY or run under xvfb-run") from None
        worker.start()
        shown = _show_frames(window, frames, max_frames, realtime)
        if screenshot is not None and shown:
            _save_png(screenshot, window.screenshot())
        return shown
    finally:
        worker.stop.set()
        if worker.is_alive():
            worker.join()
        glfw.terminate()


def _show_frames(window: _Window, frames: queue.Queue, max_frames: int | None, realtime: bool) -> int:
    shown, clock_offset = 0, None
    while not window.should_close() and (max_frames is None or shown < max_frames):
        glfw.poll_events()
        try:
            item = frames.get(timeout=0.01)
        except queue.Empty:
            continue
        if item is _END:
            break
        if isinstance(item, BaseException):
            raise item
        timestamp, image = item
        if realtime:
            clock_offset = clock_offset if clock_offset is not None else time.monotonic() - timestamp
            _wait_until(clock_offset + timestamp)
        window.show(image)
        shown += 1
    return shown


def _wait_until(deadline: float) -> None:
    """Sleep until `deadline` (monotonic seconds) while keeping the window responsive."""
    while (remaining := deadline - time.monotonic()) > 0:
        glfw.wait_events_timeout(min(remaining, 0.05))


def _save_png(path: Path, rgb: np.ndarray) -> None:
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    write_atomically(path, png.tobytes())
