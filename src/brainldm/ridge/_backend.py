"""The few array operations the ridge solvers need, for numpy and torch.

An ``_Ops`` object is built per call from the estimator's ``backend`` and
``device`` arguments and passed down explicitly: there is no global backend.
torch is imported only when ``backend="torch"`` is asked for.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from brainldm._utils import check_option

BACKENDS = ("numpy", "torch")
DTYPES = ("float32", "float64")


class _NumpyOps:
    """numpy and scipy (LAPACK) on the CPU."""

    name = "numpy"

    def __init__(self, device: str = "cpu"):
        if device != "cpu":
            raise ValueError(
                f"device={device!r} is not valid with backend='numpy'; allowed: 'cpu'. "
                "Use backend='torch' to run on a GPU."
            )
        self.device = "cpu"

    def dtype(self, name: str) -> Any:
        return np.dtype(name)

    def asarray(self, a: Any, dtype: Any) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=dtype)

    def to_numpy(self, a: Any) -> np.ndarray:
        return np.asarray(a)

    def index(self, idx: np.ndarray | slice) -> Any:
        return idx

    def zeros(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        return np.zeros(shape, dtype=dtype)

    def eye(self, n: int, dtype: Any) -> np.ndarray:
        return np.eye(n, dtype=dtype)

    def diag(self, v: np.ndarray) -> np.ndarray:
        return np.diag(v)

    def cast(self, a: np.ndarray, dtype: Any) -> np.ndarray:
        return a.astype(dtype, copy=False)

    def add_diag(self, a: np.ndarray, value: float) -> np.ndarray:
        a.flat[:: a.shape[0] + 1] += value
        return a

    def eigh(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import scipy.linalg

        # The divide-and-conquer driver is 2-3x faster than numpy's default here.
        return scipy.linalg.eigh(a, driver="evd", overwrite_a=True, check_finite=False)

    def cholesky(self, a: np.ndarray) -> Any | None:
        """Cholesky factor of a symmetric positive definite ``a`` (overwritten); None if not SPD."""
        import scipy.linalg

        try:
            return scipy.linalg.cho_factor(a, lower=True, overwrite_a=True, check_finite=False)
        except np.linalg.LinAlgError:
            return None

    def cho_solve(self, factor: Any, b: np.ndarray) -> np.ndarray:
        import scipy.linalg

        return scipy.linalg.cho_solve(factor, b, check_finite=False)

    def inv_spd(self, a: np.ndarray) -> np.ndarray | None:
        """Inverse of a symmetric positive definite matrix; None if not SPD.

        numpy's own LAPACK, not scipy's: numpy and scipy wheels ship separate
        OpenBLAS thread pools, and alternating between them right after the
        numpy products around this call costs more than the extra flops.
        """
        try:
            np.linalg.cholesky(a)
        except np.linalg.LinAlgError:
            return None
        inv = np.linalg.inv(a)
        return (inv + inv.T) / 2


class _TorchOps:
    """torch on a CPU or CUDA device."""

    name = "torch"

    def __init__(self, device: str = "cpu"):
        import torch

        self.torch = torch
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} is not available: torch.cuda.is_available() is False. "
                "Use device='cpu'."
            )

    def dtype(self, name: str) -> Any:
        return getattr(self.torch, name)

    def asarray(self, a: Any, dtype: Any) -> Any:
        torch = self.torch
        if isinstance(a, torch.Tensor):
            return a.to(device=self.device, dtype=dtype)
        a = np.ascontiguousarray(a)
        return torch.from_numpy(a).to(device=self.device, dtype=dtype)

    def to_numpy(self, a: Any) -> np.ndarray:
        if isinstance(a, self.torch.Tensor):
            return a.detach().cpu().numpy()
        return np.asarray(a)

    def index(self, idx: np.ndarray | slice) -> Any:
        if isinstance(idx, slice):
            return idx
        return self.torch.as_tensor(idx, device=self.device)

    def zeros(self, shape: tuple[int, ...], dtype: Any) -> Any:
        return self.torch.zeros(shape, dtype=dtype, device=self.device)

    def eye(self, n: int, dtype: Any) -> Any:
        return self.torch.eye(n, dtype=dtype, device=self.device)

    def diag(self, v: Any) -> Any:
        return self.torch.diag(v)

    def cast(self, a: Any, dtype: Any) -> Any:
        return a.to(dtype)

    def add_diag(self, a: Any, value: float) -> Any:
        a.diagonal().add_(value)
        return a

    def eigh(self, a: Any) -> tuple[Any, Any]:
        return self.torch.linalg.eigh(a)

    def cholesky(self, a: Any) -> Any | None:
        factor, info = self.torch.linalg.cholesky_ex(a)
        return None if int(info) != 0 else factor

    def cho_solve(self, factor: Any, b: Any) -> Any:
        return self.torch.cholesky_solve(b, factor)

    def inv_spd(self, a: Any) -> Any | None:
        factor, info = self.torch.linalg.cholesky_ex(a)
        if int(info) != 0:
            return None
        return self.torch.cholesky_inverse(factor)


def get_ops(backend: str, device: str = "cpu") -> _NumpyOps | _TorchOps:
    """Return the array operations for ``backend`` on ``device``.

    Parameters
    ----------
    backend : {"numpy", "torch"}
        Array library. ``"torch"`` needs torch installed.
    device : str
        ``"cpu"``, or a torch device such as ``"cuda"`` / ``"cuda:1"`` (torch only).
    """
    check_option("backend", backend, BACKENDS)
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'cpu' or 'cuda', got {device!r}.")
    if backend == "numpy":
        return _NumpyOps(device)
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ImportError(
            "backend='torch' needs torch; install it (pip install 'brainldm[torch]') "
            "or use backend='numpy'."
        ) from None
    return _TorchOps(device)
