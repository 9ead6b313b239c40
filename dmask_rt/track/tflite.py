"""A TFLite model run with ai-edge-litert, fed straight into its input tensor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter


class TfliteModel:
    """One loaded model with a single image input (1,H,W,3 float32) and float outputs."""

    def __init__(self, path: Path, num_threads: int = 1) -> None:
        self._interp = Interpreter(model_path=str(path), num_threads=num_threads)
        self._interp.allocate_tensors()
        inp = self._interp.get_input_details()[0]
        self._input = inp["index"]
        self.input_size = int(inp["shape"][1])
        self._outputs = [d["index"] for d in self._interp.get_output_details()]

    def run(self, pixels: np.ndarray, scale: float, offset: float) -> list[np.ndarray]:
        """Invoke on ``pixels`` (H,W,3 uint8) mapped to ``pixels * scale + offset``.

        Returns the output tensors as arrays (copies, safe to keep).
        """
        # Write into the interpreter's own input buffer: no intermediate float image.
        view = self._interp.tensor(self._input)()
        np.multiply(pixels, np.float32(scale), out=view[0], dtype=np.float32)
        if offset:
            view += np.float32(offset)
        del view  # the interpreter refuses to run while a view of its memory is alive
        self._interp.invoke()
        return [self._interp.get_tensor(i) for i in self._outputs]
