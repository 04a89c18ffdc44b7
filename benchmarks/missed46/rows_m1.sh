#!/bin/bash
# instrumented rows of main 7ee435b (m1 + csv46; detection identical to m1) for server,traffic and blind40
cd /tmp/missed46/inst
export URBANPULSE_DATASETS=/work/shared/datasets URBANPULSE_KERNELS=jit PYTHONPATH=/tmp/missed46/inst/src:/tmp/missed46/inst/benchmarks
P=/work/main/.venv/bin/python
$P benchmarks/tie45/family_rows.py /tmp/missed46/st_m1.npz 300 server,traffic
$P benchmarks/tie45/family_rows.py /tmp/missed46/blind_m1.npz 300 machine,cloud,online,adprice
