"""Run the demo and SIGKILL this process at a chosen point of the encode stage.

Usage: ``python kill_driver.py POINT OUT``. Fault injection for the resume tests:
the library is patched here, in the child process only, so that the kill lands
exactly at POINT (a kill by timing alone could miss the window):

- ``zc_store``: after the third write into a zc/U-Net feature store, i.e. with
  some stores of a batch written and the others not;
- ``fit``: at the fourth voxel-block fit, before any result is written;
- ``write``: halfway through writing the third array file of the encode stage
  (a partial temporary file is left behind);
- ``none``: no kill.
"""

import io
import os
import signal
import sys
from pathlib import Path

import numpy as np


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def _countdown(n):
    state = {"left": n}

    def tick() -> bool:
        state["left"] -= 1
        return state["left"] == 0

    return tick


def main(point: str, out: str) -> None:
    if point == "zc_store":
        from brainldm.features import _store

        put, tick = _store.FeatureStore.put, _countdown(3)

        def killing_put(self, nsd_ids, values):
            put(self, nsd_ids, values)
            if self.name.startswith(("zc_", "unet_")) and tick():
                _die()

        _store.FeatureStore.put = killing_put
    elif point == "fit":
        from brainldm.encoding import _distribute

        fit, tick = _distribute.fit_voxel_block, _countdown(4)

        def killing_fit(*args, **kwargs):
            if tick():
                _die()
            return fit(*args, **kwargs)

        _distribute.fit_voxel_block = killing_fit
    elif point == "write":
        savez, tick = np.savez, _countdown(3)

        def killing_savez(file, *args, **kwargs):
            name = str(getattr(file, "name", file))
            if f"{os.sep}encode{os.sep}" in name and tick():
                buffer = io.BytesIO()
                savez(buffer, *args, **kwargs)
                data = buffer.getvalue()
                file.write(data[: len(data) // 2])
                file.flush()
                os.fsync(file.fileno())
                _die()
            return savez(file, *args, **kwargs)

        np.savez = killing_savez
    elif point != "none":
        raise SystemExit(f"unknown kill point {point!r}")

    from brainldm.pipeline import run_demo

    run_demo(Path(out))


if __name__ == "__main__":
    main(*sys.argv[1:])
