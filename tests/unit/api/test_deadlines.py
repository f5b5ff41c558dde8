import asyncio

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from api.deadlines import BodyDeadlines, body_arrived


def test_body_arrived_reads_uvicorns_request_cycle():
    # A library change that renames the flag would make every read take the watched
    # (slower, still correct) path; this fails loudly instead.
    cycle = RequestResponseCycle.__new__(RequestResponseCycle)
    cycle.more_body = True
    assert not body_arrived(cycle.receive)
    cycle.more_body = False
    assert body_arrived(cycle.receive)


def test_body_arrived_is_false_for_any_other_receive():
    async def receive():
        return {}

    assert not body_arrived(receive)
    assert not body_arrived(object())


def test_expire_cancels_only_overdue_reads():
    clock = [100.0]
    deadlines = BodyDeadlines(timeout=10.0, clock=lambda: clock[0])

    async def main():
        sleeper = asyncio.ensure_future(asyncio.sleep(3600))
        later = asyncio.ensure_future(asyncio.sleep(3600))
        deadlines.start(sleeper)
        clock[0] = 105.0
        deadlines.start(later)
        deadlines.expire()
        assert deadlines.reading == 2 and not sleeper.cancelled()
        clock[0] = 110.0
        deadlines.expire()
        deadlines.expire()  # once is enough: no second cancel
        await asyncio.sleep(0)
        assert sleeper.cancelled() and not later.cancelled()
        assert deadlines.finish(sleeper) is True
        assert deadlines.finish(later) is False
        assert deadlines.reading == 0
        later.cancel()

    asyncio.run(main())
    BodyDeadlines().expire()  # nothing watched: nothing to do
