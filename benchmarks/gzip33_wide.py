"""Wide random run of the bounded-decoder property: counts draws, inputs aiokafka reads, failing draws."""
import sys
sys.path.insert(0, "tests")  # run from the repository root
from hypothesis import HealthCheck, given, settings, strategies as st
import test_kafka_inflate_bound as t

n = int(sys.argv[1])
counts = {"draws": 0, "inputs": 0, "readable": 0, "over_limit": 0, "failing": 0}
inner = t.test_the_bounded_gzip_decoder_never_exceeds_its_limit_and_agrees_with_aiokafka.hypothesis.inner_test

@settings(max_examples=n, derandomize=False, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(members=t.members_st, limit=st.integers(1, 12_000), cut=st.one_of(st.none(), st.integers(0, 400)),
       flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), max_size=3), junk=st.binary(max_size=40))
def prop(members, limit, cut, flips, junk):
    counts["draws"] += 1
    for data in (t._mutate(t._gzip(members), cut, flips), junk):
        counts["inputs"] += 1
        try:
            e = t._stock_gzip_decode(data)
            counts["readable"] += 1
            counts["over_limit"] += len(e) > limit
        except Exception:
            pass
    try:
        inner(members=members, limit=limit, cut=cut, flips=flips, junk=junk)
    except Exception as exc:
        counts["failing"] += 1
        if counts["failing"] < 3:
            print("FAIL", repr(exc)[:300], members, limit, cut, flips, junk, file=sys.stderr)

prop()
print(counts)
