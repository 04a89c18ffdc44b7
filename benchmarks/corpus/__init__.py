"""Labelled detection-quality corpus built from the shared real datasets (read-only).

`python benchmarks/detection_quality.py build` calls `build_corpus`, which writes NAB-style
univariate `timestamp,value` CSVs plus labels under `benchmarks/results/corpus/` (git-ignored):

    data/<sub_corpus>/<file>.csv        timestamp (UTC, `YYYY-MM-DD HH:MM:SS`), value
    labels/combined_windows.json        {"<sub_corpus>/<file>.csv": [[start, end], ...]}
    labels/combined_labels.json         anomaly onsets (points) for the point-labelled files
    manifest.json                       per file: source, metric, rows, anomalies and their kinds

Sub-corpora: `skab` (labelled pump faults), `beijing_natural` / `uci_natural` (faults found in
the real data by objective rules, see `events.py`) and `beijing_injected` / `uci_injected`
(clean stretches of the same data with faults injected at seeded random positions, see
`inject.py`). Nothing here is tuned to a detector; the rules are documented in
benchmarks/README.md ("Detection quality").
"""

from corpus.build import build_corpus

__all__ = ["build_corpus"]
