"""missed46: at each glitch firing (glitch2.fires, K 8 G 6 R 2), the share of the series' readings before it
within +-2 noise scales of the glitch's value (a value the series often sits at, e.g. an on/off series' idle)."""
import sys
import numpy as np
sys.path.insert(0, "/work/main/benchmarks"); sys.path.insert(0, "/tmp/missed46")
import detection_families as dfam  # noqa: E402
from glitch2 import fires  # noqa: E402
for fam, kind, tag in (("machine", "spike", "inj"), ("onoff", "stuck", "clean"), ("onoff", "level_shift", "clean"),
                       ("server", "level_shift", "clean"), ("cloud", "leak", "clean"), ("adprice", "level_shift", "clean"),
                       ("temperature", "spike", "inj"), ("traffic", "spike", "inj")):
    sh = []
    for s in range(150):
        d = dfam.draw(fam, kind, s)
        x = (d.injected if tag == "inj" else d.clean).astype(float)
        for t in fires(x, 8, 6, 2)[:1]:
            dd = np.abs(np.diff(x[max(0, t - 500):t]))
            sd = 1.4826 * np.median(dd) / np.sqrt(2)
            sh.append(np.mean(np.abs(x[:t] - x[t]) <= 2 * sd))
    sh = np.array(sh)
    print(f"{fam}:{kind} {tag}: firings {len(sh)} of 150; share of earlier readings within 2 scales: "
          f"quartiles {np.round(np.percentile(sh, [25, 50, 75]), 4) if len(sh) else '-'}; <= 0.01: {np.mean(sh <= 0.01) if len(sh) else 0:.2f}")
