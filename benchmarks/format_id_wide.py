"""tests/test_format_sensor_id_reasons.py's property over N fresh random draws (privacy38 follow-up; generation only).

    PYTHONPATH=$PWD/src:tests .venv/bin/python benchmarks/format_id_wide.py 2000 3

Why: the derandomized test draws 150 fixed ids; this counts failing draws over fresh ones. Prints a dict.
"""
import sys
from hypothesis import HealthCheck, Phase, given, seed as hseed, settings
import test_format_sensor_id_reasons as T
inner = T.test_a_sensor_id_gets_one_verdict_in_every_format.hypothesis.inner_test
out = {"draws": 0, "failing": 0}
@hseed(int(sys.argv[2]))
@settings(max_examples=int(sys.argv[1]), deadline=None, phases=[Phase.generate], database=None, suppress_health_check=list(HealthCheck))
@given(sensor=T.sensor_ids())
def run(sensor):
    out["draws"] += 1
    try: inner(sensor=sensor)
    except AssertionError: out["failing"] += 1
run(); print(out)
