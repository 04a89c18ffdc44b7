"""Wide run of tests/test_detect_burst_onset.py's property (first36): seeds S0 .. S0+N, every server kind.

The test and the change are not on main (reverted by the lead, see benchmarks/README.md first36): apply
benchmarks/detection_tried/first36_held_onset_floor_v11.patch first.

    PYTHONPATH=$PWD/src .venv/bin/python benchmarks/first36_onset_wide.py 6000 60   # and PYTHONPATH=/work/main/src
"""
import sys
sys.path.insert(0, "tests")
import test_detect_burst_onset as t
from corpus import families
s0, n = int(sys.argv[1]), int(sys.argv[2])
fo = ff = fs = tot = 0
for seed in range(s0, s0 + n):
    for kind in families.ALL_KINDS["server"]:
        onset, fd, far, shift = t.judge(seed, kind)
        tot += 1; fo += onset >= t.BAR; ff += (not fd) or far < 0.99; fs += shift < t.BAR
print(f"{tot} draws: onset >= bar {fo}, far fails {ff}, shift fails {fs}")
