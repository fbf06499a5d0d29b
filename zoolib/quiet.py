"""TensorFlow without its C++ start-up lines, in notebooks run anywhere (a foundation, floor 0).

On a CPU machine, importing TensorFlow writes lines to the process's stderr that are not the
notebook's: absl's notice that logging has not started, "Could not find cuda drivers ... GPU
will not be used" (INFO lines that ignore ``TF_CPP_MIN_LOG_LEVEL``), and later "failed call to
cuInit" and grappler's "Error in PredictCost()" lines (which the level hides). A Jupyter kernel
copies that file descriptor into the cell's output, so in JupyterLab or papermill they fill the
first outputs and every training cell. The runner (:mod:`zoolib.reports.runner`) filters its
kernels' output with :func:`drop_noise`; :func:`tensorflow`, the first code cell of every
notebook, does the same wherever a notebook runs: it sets ``TF_CPP_MIN_LOG_LEVEL=3`` (unless
set) and imports TensorFlow with the process's stderr sent to a temporary file, then writes
back everything in it but those lines. TensorFlow's other messages, and any Python error, stay.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

# Lines the kernel writes to stderr that are not the notebook's: absl's notice before
# TensorFlow's C++ logging starts and TensorFlow's INFO lines from that moment (they ignore
# TF_CPP_MIN_LOG_LEVEL), ipykernel's unencrypted-TCP warning (see the runner's
# ``kernel_manager_class``) and its note of the interrupt papermill sends when it stops the
# kernel after a failing cell. TensorFlow's warnings and errors (W..., E... lines) are kept.
KERNEL_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|I\d{4} \d+:\d+:\d+\.\d+ +\d+ \S+:\d+\] .*"
    r"|\[IPKernelApp\] WARNING \| Kernel is running over TCP without encryption\..*"
    r"|\[IPKernelApp\] ERROR \| KeyboardInterrupt caught in kernel\."
)

# TensorFlow's error that it found no CUDA driver: on a machine without an NVIDIA device it
# only says there is no GPU (and reads like a failure); where there is one it is kept
NO_DRIVER = re.compile(r"E\d{4} \d+:\d+:\d+\.\d+ +\d+ \S+:\d+\] failed call to cuInit: .*")
NVIDIA_DEVICE = Path("/dev/nvidiactl")


def drop_noise(text: str) -> str:
    """``text`` without the lines matching ``KERNEL_NOISE`` (and ``NO_DRIVER`` on a machine
    without an NVIDIA device)."""
    patterns = [KERNEL_NOISE] + ([] if NVIDIA_DEVICE.exists() else [NO_DRIVER])
    lines = text.splitlines(keepends=True)
    return "".join(line for line in lines
                   if not any(p.fullmatch(line.rstrip("\r\n")) for p in patterns))  # fmt: skip


def tensorflow() -> None:
    """Import TensorFlow (once) without its C++ start-up lines on the process's stderr (file
    descriptor 2, which a Jupyter kernel copies into the outputs), and with
    ``TF_CPP_MIN_LOG_LEVEL=3`` unless the environment sets a level. Returns nothing, so a
    notebook cell that ends with it shows no output; ``import tensorflow`` then finds it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 to filter: a plain import
        import tensorflow  # noqa: F401

        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # where the device search writes its lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            rest = drop_noise(captured.read().decode(errors="replace"))
            if rest:
                sys.stderr.write(rest)
