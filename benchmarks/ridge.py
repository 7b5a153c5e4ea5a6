"""Benchmark brainldm.ridge.RidgeCV against himalaya, scikit-learn and the floor.

Each method runs in its own subprocess on the same synthetic data (saved as
.npy), so its wall time and peak resident memory (VmHWM, reset after the
data are loaded) are its own; "+N over data" is that peak minus the RSS
right after loading the data and importing the method's library. All methods
fit float32 data with 5-fold unshuffled K-fold CV, the same alpha grid, one
alpha per target and no intercept (the data are centred), and predict 500
held-out rows, which are compared with himalaya (numpy backend).

The floor is the time of the products no exact solver can avoid: X^T X, its
eigendecomposition and X^T Y (numpy/scipy, same process conditions).

Usage::

    python benchmarks/ridge.py            # decoding- and encoding-like shapes
    python benchmarks/ridge.py --quick    # small shapes, for a smoke test
    python benchmarks/ridge.py --shapes encoding --methods floor,ours-numpy
    python benchmarks/ridge.py --wait-idle 600 --retries 2   # on a shared machine
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPES = {  # name: (n_samples, n_features, n_targets)
    "decoding": (5000, 4000, 6400),
    "encoding": (5000, 1000, 20000),
}
QUICK_SHAPES = {"decoding": (600, 400, 640), "encoding": (600, 100, 2000)}
ALPHAS = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6]
N_TEST = 500
N_FOLDS = 5
METHODS = (
    "floor",
    "ours-numpy",
    "ours-torch",
    "ours-Ridge-fixed",
    "himalaya-numpy",
    "himalaya-torch",
    "sklearn",
)


def make_data(n, p, q, seed=0):
    """Rank-64 weights, heteroscedastic correlated features, noise; standardised, centred."""
    rng = np.random.default_rng(seed)
    m = n + N_TEST
    mix = rng.standard_normal((p, p // 4 + 1)).astype(np.float32) / np.sqrt(p)
    X = rng.standard_normal((m, p), dtype=np.float32) * np.exp(rng.uniform(-1, 1, p))
    X += rng.standard_normal((m, p // 4 + 1), dtype=np.float32) @ mix.T * 3
    rank = min(64, p)
    W = (rng.standard_normal((p, rank), dtype=np.float32)
         @ rng.standard_normal((rank, q), dtype=np.float32)) / np.sqrt(p * rank)
    Y = X @ W
    Y *= rng.uniform(0.2, 2.0, q).astype(np.float32)  # per-target signal strength
    Y += rng.standard_normal((m, q), dtype=np.float32)
    mean, std = X[:n].mean(0), X[:n].std(0)
    X = (X - mean) / std
    Y -= Y[:n].mean(0)
    return X[:n].copy(), Y[:n].copy(), X[n:].copy()


# ----------------------------------------------------------------------------- children


def _status_mb(field):
    """VmRSS / VmHWM of this process in MB (Linux), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak():
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the peak is the fit's own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def child(method, data_dir, out_dir):
    X = np.load(Path(data_dir) / "X.npy")
    Y = np.load(Path(data_dir) / "Y.npy")
    X_test = np.load(Path(data_dir) / "X_test.npy")
    if method == "floor":
        import scipy.linalg
    elif method.startswith("ours"):
        from brainldm.ridge import Ridge, RidgeCV
    elif method.startswith("himalaya"):
        from himalaya.backend import set_backend
        from himalaya.ridge import RidgeCV as HRidgeCV
    elif method == "sklearn":
        from sklearn.linear_model import RidgeCV as SKRidgeCV
    if method.endswith("torch"):
        import torch  # noqa: F401  (import time is not fit time)
    base = _status_mb("VmRSS")
    _reset_peak()
    result = {}
    cpu0 = _cpu_seconds()
    t0 = time.perf_counter()
    pred = best = None
    if method == "floor":
        t = time.perf_counter()
        G = X.T @ X
        result["t_gram"] = time.perf_counter() - t
        t = time.perf_counter()
        scipy.linalg.eigh(G, driver="evd", overwrite_a=True, check_finite=False)
        result["t_eigh"] = time.perf_counter() - t
        t = time.perf_counter()
        X.T @ Y
        result["t_xty"] = time.perf_counter() - t
    elif method.startswith("ours"):
        if method == "ours-Ridge-fixed":
            model = Ridge(1e3, fit_intercept=False, standardize_X=False).fit(X, Y)
        else:
            model = RidgeCV(ALPHAS, cv=N_FOLDS, fit_intercept=False, standardize_X=False,
                            backend=method.split("-")[1]).fit(X, Y)
            best = model.best_alphas_
        fit_time = time.perf_counter() - t0
        fit_cpu = _cpu_seconds() - cpu0
        pred = model.predict(X_test)
    elif method.startswith("himalaya"):
        # Global backend, but this process exists only for this fit.
        set_backend(method.split("-")[1])
        model = HRidgeCV(alphas=np.array(ALPHAS, dtype=np.float32), cv=N_FOLDS).fit(X, Y)
        fit_time = time.perf_counter() - t0
        fit_cpu = _cpu_seconds() - cpu0
        pred = np.asarray(model.predict(X_test))
        best = np.asarray(model.best_alphas_)
    elif method == "sklearn":
        model = SKRidgeCV(alphas=ALPHAS, fit_intercept=False, alpha_per_target=True).fit(X, Y)
        fit_time = time.perf_counter() - t0
        fit_cpu = _cpu_seconds() - cpu0
        pred = model.predict(X_test)
        best = model.alpha_
    else:
        raise ValueError(method)
    if method == "floor":
        result["time"] = sum(result[k] for k in ("t_gram", "t_eigh", "t_xty"))
        result["cpu"] = _cpu_seconds() - cpu0
    else:
        result["time"], result["cpu"] = fit_time, fit_cpu
    result["rss_mb"] = _status_mb("VmHWM")
    result["rss_data_mb"] = base
    if pred is not None and method != "ours-Ridge-fixed":  # one fixed alpha: not comparable
        np.save(Path(out_dir) / f"{method}_pred.npy", np.asarray(pred, dtype=np.float32))
    if best is not None:
        np.save(Path(out_dir) / f"{method}_best.npy", np.asarray(best, dtype=np.float64))
    (Path(out_dir) / f"{method}.json").write_text(json.dumps(result))


# ----------------------------------------------------------------------------- parent


def _busy_jiffies():
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, idle, iowait, irq, softirq, steal = map(int, fields[:8])
    return user + nice + system + irq + softirq + steal


def _wait_for_idle(threshold=0.3, max_wait=3600):
    """Wait until the CPUs have been almost idle for 10 s (at most max_wait s)."""
    tick = os.sysconf("SC_CLK_TCK")
    waited = 0
    while waited < max_wait:
        before = _busy_jiffies()
        time.sleep(10)
        waited += 10
        if (_busy_jiffies() - before) / tick / 10 < threshold:
            return
    print("    (still busy after waiting; measuring anyway)", flush=True)


def _run_child(method, data, threads=None):
    """Run one method in a fresh process; add the CPU time other processes took meanwhile."""
    tick = os.sysconf("SC_CLK_TCK")
    busy0 = _busy_jiffies()
    own0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    env = dict(os.environ)
    if threads:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
    proc = subprocess.run(
        [sys.executable, __file__, "--child", method, str(data), str(data)],
        capture_output=True, text=True, env=env,
    )
    wall = time.perf_counter() - t0
    own1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy = (_busy_jiffies() - busy0) / tick
    own = (own1.ru_utime - own0.ru_utime) + (own1.ru_stime - own0.ru_stime)
    if proc.returncode:
        print(f"  {method}: FAILED\n{proc.stderr[-2000:]}", flush=True)
        return None
    res = json.loads((Path(data) / f"{method}.json").read_text())
    res["foreign_cpu"] = max(0.0, busy - own) / wall
    return res


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_shape(name, shape, methods, workdir, wait_idle=0, retries=0, threads=None):
    n, p, q = shape
    print(f"\n=== {name}-like: n_samples={n}, n_features={p}, n_targets={q}, "
          f"{len(ALPHAS)} alphas, {N_FOLDS}-fold CV, float32 ===", flush=True)
    data = Path(workdir) / name
    data.mkdir(exist_ok=True)
    X, Y, X_test = make_data(n, p, q)
    for key, arr in (("X", X), ("Y", Y), ("X_test", X_test)):
        np.save(data / f"{key}.npy", arr)
    del X, Y, X_test
    results = {}
    for method in methods:
        for attempt in range(1 + retries):
            if wait_idle:
                _wait_for_idle(max_wait=wait_idle)
            res = _run_child(method, data, threads)
            if res is None:
                break
            print(f"  {method:<18} {res['time']:8.2f} s wall, {res['cpu']:8.2f} s CPU   "
                  f"peak RSS {res['rss_mb']:7.0f} MB  "
                  f"(+{res['rss_mb'] - res['rss_data_mb']:.0f} over data)   "
                  f"other processes used {res['foreign_cpu']:.0%} of a core", flush=True)
            results[method] = res
            if res["foreign_cpu"] < 0.1:
                break
            if attempt < retries:
                print("    (machine busy; measuring again)", flush=True)
    _report(results, data)
    return results


def _report(results, data):
    floor = results.get("floor")
    ref = "himalaya-numpy" if "himalaya-numpy" in results else None
    if floor:
        print(f"  floor = X^T X {floor['t_gram']:.2f} s + eigh {floor['t_eigh']:.2f} s "
              f"+ X^T Y {floor['t_xty']:.2f} s (wall)")
    ref_pred = np.load(data / f"{ref}_pred.npy") if ref else None
    ref_best = np.load(data / f"{ref}_best.npy") if ref else None
    print("  ratios: '/floor' = time / floor time; 'him/x' = himalaya-numpy time / time "
          "(speed-up); agreement columns compare held-out predictions with himalaya-numpy")
    print(f"  {'method':<17}{'wall':>8}{'CPU':>8}{'/floor':>8}{'/floor':>8}{'him/x':>7}"
          f"{'him/x':>7}{'peak RSS':>10}{'other':>7}{'same':>9}{'max':>10}{'rel':>9}")
    print(f"  {'':<17}{'s':>8}{'s':>8}{'wall':>8}{'CPU':>8}{'wall':>7}{'CPU':>7}{'MB':>10}"
          f"{'CPU':>7}{'alpha':>9}{'|dpred|':>10}{'RMS':>9}")

    def ratio(a, b):
        return f"{a / b:7.2f}x" if b else ""

    for method, res in results.items():
        line = f"  {method:<17}{res['time']:8.2f}{res['cpu']:8.2f}"
        line += (ratio(res["time"], floor["time"]) + ratio(res["cpu"], floor["cpu"])) if floor \
            else " " * 16
        if ref:
            line += f"{results[ref]['time'] / res['time']:6.2f}x"
            line += f"{results[ref]['cpu'] / res['cpu']:6.2f}x"
        else:
            line += " " * 14
        line += f"{res['rss_mb']:10.0f}{res['foreign_cpu']:7.0%}"
        pred_file = data / f"{method}_pred.npy"
        if ref and pred_file.exists():
            pred = np.load(pred_file)
            best_file = data / f"{method}_best.npy"
            best = np.load(best_file) if best_file.exists() else None
            same = (f"{np.mean(np.isclose(best, ref_best, rtol=1e-4)):9.2%}"
                    if best is not None else f"{'-':>9}")
            diff = np.abs(pred - ref_pred)
            rel = np.sqrt((diff**2).mean() / (ref_pred**2).mean())
            line += f"{same}{diff.max():10.1e}{rel:9.1e}"
        print(line, flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes (smoke test)")
    parser.add_argument("--shapes", default="decoding,encoding")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                        help="before each method, wait up to this long for an idle machine")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS/OpenMP threads per method (default: library default); "
                             "with 1, CPU time is a load-independent measure")
    parser.add_argument("--retries", type=int, default=0,
                        help="re-measure a method up to this many times when other "
                             "processes used >10%% of a core during it")
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "DATA", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return
    shapes = QUICK_SHAPES if args.quick else SHAPES
    methods = [m for m in args.methods.split(",") if m]
    for m in methods:
        if m not in METHODS:
            parser.error(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    import platform

    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"{os.cpu_count()} CPUs, threads per method: {args.threads or 'default'}, "
          f"load avg at start {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="ridge_bench_") as workdir:
        for name in args.shapes.split(","):
            run_shape(name, shapes[name], methods, workdir, args.wait_idle, args.retries,
                      args.threads)


if __name__ == "__main__":
    main()
