"""River's HalfSpaceTrees as a development-set baseline (issue 11), runnable outside the project venv.

River needs scipy and pandas, whose wheels pin a numpy older than the project's, so the scores
are computed in a separate venv and cached where `benchmarks/detection_dev.py` reads them:

    python3 -m venv /tmp/detect-river-venv && /tmp/detect-river-venv/bin/pip install river numpy
    /tmp/detect-river-venv/bin/python benchmarks/corpus/hst.py      # -> benchmarks/results/devset-hst.npz

This module imports only numpy and river (the cached development set, results/devset.pkl, is a
pickle of plain dicts), so it runs in that venv without urbanpulse installed.

The setup is River's documented one, applied to a univariate stream:
- features (`FEATURES`): the reading and its first difference. HST estimates mass in boxes of
  feature space; on the value alone a jump inside the normal range is invisible and a spike is
  only a rare level; with the difference a jump is a rare point in 2-D;
- each feature scaled into [0, 1] by `preprocessing.MinMaxScaler` (HST draws its split points
  in [0, 1], its default `limits`), in a `compose.Pipeline`, as River's HST example does;
- `n_trees`, `height`, `window_size` at River's defaults (10, 8, 250), seed 42;
- `score_one` before `learn_one` for every reading (prequential, causal). River's score is
  already "high = anomalous" (1 - the point's normalised mass) and 0 until the first reference
  window of 250 readings fills (inside NAB's probationary 15 % for files of 1,667 rows or more).

Calibration (`conformal`, on by default): HST's score is a mass relative to the stream's own
recent spread, so its level differs from stream to stream (median 0.06 on 3w, 0.94 on uci) and
one threshold for all files -- which is how NAB scores every detector -- fits none of them.
River's own way to threshold HST is per stream, by a running quantile of its scores
(`anomaly.QuantileFilter`); the continuous form of that is the conformal score
1 - (#{earlier scores of this stream >= s} + 1) / (n + 1): the running rank of the score, so NAB's
pooled threshold on it is one quantile level for every stream. It keeps HST's order within a
stream (a monotone map at each step) and uses only earlier scores. `--raw` gives River's score as
it is.
"""

from __future__ import annotations

import argparse
import bisect
import pickle
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "results"
DEVSET = RESULTS / "devset.pkl"
CACHE = RESULTS / "devset-hst.npz"

FEATURES = "value+diff"
N_TREES, HEIGHT, WINDOW_SIZE, SEED = 10, 8, 250, 42


def config_tag(features: str = FEATURES, calibrate: bool = True, window_size: int = WINDOW_SIZE) -> str:
    """What cached scores were computed with: `detection_dev.run_hst` uses a cache only if it
    carries the tag of the current defaults (an old cache computed otherwise is not read)."""
    return (f"river-hst features={features} minmax n_trees={N_TREES} height={HEIGHT} "
            f"window_size={window_size} seed={SEED} calibration={'conformal' if calibrate else 'none'}")


def _rows(values: np.ndarray, features: str):
    """Feature dicts per reading (None for a missing reading: scored 0, not learned).

    `features`: "value", "value+diff", or "shingleN" (the reading and its N-1 predecessors)."""
    if features.startswith("shingle"):
        size = int(features[len("shingle"):])
        lags: deque[float] = deque(maxlen=size)
    else:
        size, lags = 0, deque(maxlen=1)
        parts = set(features.split("+"))
        if not parts <= {"value", "diff"}:
            raise ValueError(f"unknown features {features!r}: value, value+diff or shingleN")
    prev = None
    for x in values.tolist():
        if x != x:
            yield None
            continue
        if size:
            lags.append(x)
            d = {f"lag{j}": lags[-1 - j] if j < len(lags) else lags[0] for j in range(size)}
        else:
            d = {"value": x} if "value" in parts else {}
            if "diff" in parts:
                d["diff"] = 0.0 if prev is None else x - prev
        prev = x
        yield d


def score_file(values: np.ndarray, features: str = FEATURES, window_size: int = WINDOW_SIZE) -> np.ndarray:
    """River's HST score per reading, in [0, 1], high = anomalous; causal (prequential)."""
    from river import anomaly, compose, preprocessing

    model = compose.Pipeline(
        preprocessing.MinMaxScaler(),
        anomaly.HalfSpaceTrees(n_trees=N_TREES, height=HEIGHT, window_size=window_size, seed=SEED),
    )
    s = np.zeros(len(values))
    for k, d in enumerate(_rows(values, features)):
        if d is None:
            continue
        s[k] = model.score_one(d)
        model.learn_one(d)
    return s


def conformal(score: np.ndarray) -> np.ndarray:
    """1 - (#{earlier scores >= s} + 1) / (n + 1) per reading, over the stream's earlier non-zero
    scores (0 during HST's warm-up and for missing readings, which stay 0 and are not counted).
    Monotone in s at each step, so HST's order among readings scored at the same time is kept."""
    out = np.zeros(len(score))
    past: list[float] = []
    for k, x in enumerate(score.tolist()):
        if x == 0.0:
            continue
        n = len(past)
        if n:
            ge = n - bisect.bisect_left(past, x)
            out[k] = 1.0 - (ge + 1) / (n + 1)
        bisect.insort(past, x)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--features", default=FEATURES, help="value, value+diff, or shingleN (default %(default)s)")
    ap.add_argument("--window-size", type=int, default=WINDOW_SIZE)
    ap.add_argument("--raw", action="store_true", help="River's score as it is (no per-stream calibration)")
    ap.add_argument("--out", default=str(CACHE))
    args = ap.parse_args(argv)
    files = pickle.loads(DEVSET.read_bytes())
    t0 = time.perf_counter()
    out = {}
    for f in files:
        s = score_file(f["values"], args.features, args.window_size)
        out[f["name"]] = s if args.raw else conformal(s)
    out["__config__"] = np.array(config_tag(args.features, not args.raw, args.window_size))
    np.savez_compressed(args.out, **out)
    n = sum(len(f["values"]) for f in files)
    print(f"{len(files)} files, {n} readings, {time.perf_counter() - t0:.0f} s -> {args.out}: {out['__config__']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
