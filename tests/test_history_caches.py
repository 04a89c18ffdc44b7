"""The short-lived caches of the history request path and their documented bounds.

* :class:`urbanpulse.ttl_cache.TtlCache` against a plain model (hypothesis: generated sequences
  of put/get/discard/clock steps).
* API keys (``api.key_cache_s``): a key revoked through the service's own store/API stops
  working at once even while cached; one revoked elsewhere (another store, as the CLI does)
  works until the cache lifetime has passed, then gets 401 ``revoked_key``; unknown and
  revoked keys are never cached. A clock the test moves stands in for time.
* Selections (``history.selection_cache_s``): a registry change made elsewhere reaches queries
  once the lifetime has passed; one made through the API (PUT /sensors/{id}) at once; the
  open-data scope never sees a selection resolved for a key.
Real PostgreSQL, the real app over httpx's ASGI transport.
"""

from __future__ import annotations

import asyncpg
import httpx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import services
from readings import readings_columns
from urbanpulse.api.access import AccessPolicy
from urbanpulse.api.app import build_app
from urbanpulse.auth.keys import KeyStore
from urbanpulse.config import load_settings
from urbanpulse.errors import NotAuthenticated
from urbanpulse.query.run import HistoryRunner, QueryLimits, to_us
from urbanpulse.query.selection_cache import SelectionCache
from urbanpulse.query.spec import parse_query
from urbanpulse.registry.model import SensorIn
from urbanpulse.registry.store import save_sensor
from urbanpulse.storage.partitions import MonthlyPartitions
from urbanpulse.storage.writer import ReadingStore, prepare_connection
from urbanpulse.ttl_cache import TtlCache

pytestmark = pytest.mark.integration


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the cache itself ----------------------------------------------------------------------

_ops = st.lists(st.one_of(
    st.tuples(st.just("put"), st.integers(0, 5), st.integers(0, 99)),
    st.tuples(st.just("get"), st.integers(0, 5)),
    st.tuples(st.just("discard"), st.integers(0, 99)),
    st.tuples(st.just("tick"), st.floats(0, 3, allow_nan=False)),
    st.tuples(st.just("clear"),)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(ttl=st.floats(0, 4, allow_nan=False), cap=st.integers(1, 4), ops=_ops)
def test_ttl_cache_behaves_like_the_model(ttl: float, cap: int, ops: list[tuple]):
    clock = Clock()
    cache: TtlCache[int, int] = TtlCache(ttl, cap, clock)
    model: dict[int, tuple[float, float, int]] = {}  # key -> (stored at, expires, value); insertion order = age
    for op in ops:
        if op[0] == "put":
            if ttl > 0:
                model.pop(op[1], None)
                model[op[1]] = (clock.now, clock.now + ttl, op[2])
                while len(model) > cap:
                    model.pop(next(iter(model)))
            cache.put(op[1], op[2])
        elif op[0] == "get":
            hit = model.get(op[1])
            want = hit[2] if hit is not None and clock.now < hit[1] else None
            if hit is not None and want is None:
                del model[op[1]]
            assert cache.get(op[1]) == want
        elif op[0] == "discard":
            gone = [k for k, v in model.items() if v[2] == op[1]]
            for k in gone:
                del model[k]
            assert cache.discard(lambda v, x=op[1]: v == x) == len(gone)
        elif op[0] == "tick":
            clock.now += op[1]
        else:
            model.clear()
            cache.clear()
        assert len(cache) == len(model) <= cap


def test_ttl_cache_refuses_a_negative_lifetime():
    with pytest.raises(ValueError, match=">= 0 seconds"):
        TtlCache(-1)


# -- API keys ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def db(pg_dsn: str):
    with services.migrated_database(pg_dsn) as dsn:
        yield dsn


@pytest.fixture(scope="module")
async def pool(db: str):
    p = await asyncpg.create_pool(db, min_size=1, max_size=3, init=prepare_connection)
    try:
        store = ReadingStore(p, MonthlyPartitions())
        t = np.arange(to_us(parse_query({"sensor": "x", "start": "2024-05-01"}).start),
                      to_us(parse_query({"sensor": "x", "start": "2024-05-02"}).start), 600_000_000, dtype=np.int64)
        for s in ("cache-a", "cache-b"):
            await store.write(readings_columns([s] * len(t), ["pm2_5"] * len(t), t, np.arange(len(t), dtype=float)),
                              [], "replay")
        for s, cls in (("cache-a", "open"), ("cache-b", "open")):
            await save_sensor(p, SensorIn(id=s, name=s, lat=51.5, lon=-0.1, area="east", data_class=cls,
                                          metrics={"pm2_5": {"unit": "ug/m3", "interval_s": 600}}))
        yield p
    finally:
        await p.close()


async def test_a_key_revoked_elsewhere_stops_working_within_the_cache_lifetime(pool):
    clock = Clock()
    cached = KeyStore(pool, cache_s=5, clock=clock)  # the service's store
    elsewhere = KeyStore(pool)  # `urbanpulse keys revoke` in another process
    made = await elsewhere.create("cache test", "viewer")
    assert (await cached.verify(made.secret)).id == made.key.id
    await elsewhere.revoke(made.key.id, "test")
    assert (await cached.verify(made.secret)).id == made.key.id  # within the bound: still cached
    clock.now += 4.9
    assert (await cached.verify(made.secret)).active
    clock.now += 0.1  # the bound has passed: asked again, and refused
    with pytest.raises(NotAuthenticated, match="revoked") as exc:
        await cached.verify(made.secret)
    assert exc.value.code == "revoked_key"
    assert len(cached.cache) == 0  # a revoked key is never cached
    with pytest.raises(NotAuthenticated) as exc:
        await cached.verify(made.secret[:-1] + ("A" if made.secret[-1] != "A" else "B"))  # wrong secret
    assert exc.value.code == "unknown_key" and len(cached.cache) == 0


async def test_a_key_revoked_through_the_api_stops_working_at_once(pool):
    clock = Clock()
    store = KeyStore(pool, cache_s=3600, clock=clock)  # an hour: only the revocation can end it
    admin = (await store.create("cache admin", "admin")).secret
    viewer = await store.create("cache viewer", "viewer")
    app = build_app(AccessPolicy(), keys=store, service=type("Svc", (), {"pool": pool})())
    params = {"sensor": "cache-a", "start": "2024-05-01T00:00:00Z", "end": "2024-05-02T00:00:00Z", "bucket": "1h"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        as_viewer = {"Authorization": f"Bearer {viewer.secret}"}
        assert (await c.get("/readings", params=params, headers=as_viewer)).status_code == 200
        assert len(store.cache) == 1
        r = await c.delete(f"/keys/{viewer.key.id}", headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == 200, r.text
        r = await c.get("/readings", params=params, headers=as_viewer)
        assert r.status_code == 401 and r.json()["error"] == "revoked_key"


# -- selections ----------------------------------------------------------------------------


async def test_selection_changes_reach_queries_within_the_cache_lifetime(pool):
    clock = Clock()
    cache = SelectionCache(2.0, 64, clock)
    full = HistoryRunner(pool, QueryLimits(), cache=cache)
    open_only = HistoryRunner(pool, QueryLimits(), data_classes=["open"], cache=cache)
    q = parse_query({"area": "east", "start": "2024-05-01T00:00:00Z", "end": "2024-05-02T00:00:00Z",
                     "bucket": "1h", "agg": "count"})

    async def sensors(runner: HistoryRunner) -> list[str]:
        page = await runner.page(q)
        assert page.path == "rollup_1h" and len(page.records) == 24 * len(page.series)
        return [s.sensor_id for s in page.series]

    try:
        assert await sensors(full) == ["cache-a", "cache-b"]
        assert await sensors(open_only) == ["cache-a", "cache-b"]
        # elsewhere (another process): cache-b becomes restricted and moves out of the area
        await save_sensor(pool, SensorIn(id="cache-b", name="cache-b", lat=51.5, lon=-0.1, area="west",
                                         data_class="restricted",
                                         metrics={"pm2_5": {"unit": "ug/m3", "interval_s": 600}}))
        assert await sensors(full) == ["cache-a", "cache-b"]  # within the bound
        clock.now += 2.0
        assert await sensors(full) == ["cache-a"]
        assert await sensors(open_only) == ["cache-a"]

        # through the API: the service's cache is cleared at once
        store = KeyStore(pool)
        admin = (await store.create("cache admin 2", "admin")).secret
        svc = type("Svc", (), {"pool": pool, "settings": load_settings(api={"enabled": False})})()
        app = build_app(AccessPolicy(open_data=True), keys=store, service=svc)
        app.state.history_cache = SelectionCache(3600.0)  # an hour: only the change can clear it
        params = {"area": "east", "start": "2024-05-01T00:00:00Z", "end": "2024-05-02T00:00:00Z", "bucket": "1h",
                  "shape": "columns"}
        def sensor(area: str, cls: str) -> dict:
            return {"name": "cache-b", "lat": 51.5, "lon": -0.1, "area": area, "data_class": cls,
                    "metrics": {"pm2_5": {"unit": "ug/m3", "interval_s": 600}}}

        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            as_admin = {"Authorization": f"Bearer {admin}"}

            async def listed(headers: dict[str, str]) -> list[str]:
                r = await c.get("/readings", params=params, headers=headers)
                assert r.status_code == 200, r.text
                return [s["sensor_id"] for s in r.json()["series"]]

            assert await listed(as_admin) == ["cache-a"]
            r = await c.put("/sensors/cache-b", json=sensor("east", "restricted"), headers=as_admin)
            assert r.status_code in (200, 201), r.text
            assert await listed(as_admin) == ["cache-a", "cache-b"]  # at once, and now cached for a key
            assert await listed({}) == ["cache-a"]  # the open-data scope never gets the key's entry
            r = await c.put("/sensors/cache-b", json=sensor("east", "open"), headers=as_admin)
            assert r.status_code == 200, r.text
            assert await listed({}) == ["cache-a", "cache-b"]
    finally:
        await save_sensor(pool, SensorIn(id="cache-b", name="cache-b", lat=51.5, lon=-0.1, area="east",
                                         data_class="open", metrics={"pm2_5": {"unit": "ug/m3", "interval_s": 600}}))
