"""lat27 diagnostics: a per-batch timeline of the service (benchmarks/README.md ``lat27``).

Put this directory first on the service's PYTHONPATH and set LAT27_TRACE=DIR: a process started as
``urbanpulse ... run --config ...`` wraps the pipeline's stages and writes DIR/trace-PID.json at exit;
report.py beside it prints the stages. Monkeypatching, for measurement only; not part of the service."""
import os, sys
if os.environ.get("LAT27_TRACE") and "--config" in sys.argv:
    import atexit, json, time
    pc = time.perf_counter
    EV = []
    import urbanpulse.pipeline.core as core
    import urbanpulse.pipeline.batch_writer as bw
    import urbanpulse.pipeline.ack_ledger as al
    import urbanpulse.storage.writer as sw

    T0 = time.time() - pc()  # perf_counter -> epoch

    o_submit = core.Pipeline.submit
    async def submit(self, batch, ack=None):
        t = pc()
        r = await o_submit(self, batch, ack)
        EV.append(("sub", t, pc(), len(batch.payloads), bool(batch.caught_up), int(batch.behind), self.writer._writing))
        return r
    core.Pipeline.submit = submit

    o_hand = core.Pipeline._hand_off
    async def hand(self, seq, source, pending):
        t = pc()
        w = self.writer._writing
        await o_hand(self, seq, source, pending)
        EV.append(("form", seq, pending.started, t, pc(), pending.size, w))
    core.Pipeline._hand_off = hand

    o_write = bw.BatchWriter._write
    async def write(self, batch):
        t = pc()
        r = await o_write(self, batch)
        EV.append(("write", batch.seq, t, pc(), len(batch.readings) if batch.readings is not None else 0))
        return r
    bw.BatchWriter._write = write

    o_turn = al.AckLedger.wait_turn
    async def turn(self, batch, conn):
        t = pc()
        await o_turn(self, batch, conn)
        EV.append(("turn", batch.seq, t, pc(), id(conn)))
    al.AckLedger.wait_turn = turn

    o_comm = al.AckLedger.committed
    async def comm(self, batch):
        EV.append(("commit", batch.seq, pc()))
        await o_comm(self, batch)
    al.AckLedger.committed = comm

    def dump():
        with open(os.path.join(os.environ["LAT27_TRACE"], f"trace-{os.getpid()}.json"), "w") as f:
            json.dump({"t0": T0, "ev": EV}, f)
    atexit.register(dump)
    o_fin = sw.ReadingStore._finish
    async def fin(self, conn, rejections, hook, partials, claim):
        t = pc()
        await o_fin(self, conn, rejections, hook, partials, claim)
        EV.append(("fin", t, pc(), id(conn)))
    sw.ReadingStore._finish = fin

    o_aw = bw.BatchWriter._write_analytics
    async def aw(self, conn, batch, handle):
        t = pc()
        await o_aw(self, conn, batch, handle)
        EV.append(("aw", batch.seq, t, pc()))
    bw.BatchWriter._write_analytics = aw
    o_after = sw.ReadingStore._after
    def after(self, claim, partials, committed):
        t = pc()
        o_after(self, claim, partials, committed)
        EV.append(("after", t, pc()))
    sw.ReadingStore._after = after
