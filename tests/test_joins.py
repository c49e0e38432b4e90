"""Fan out into child sequences with ctx.trigger, and join them again with evr.join."""

from __future__ import annotations

import time

import pytest

import eventor as evr
from eventor import Event, Flow, step
from eventor.testing import capture_events

FILES = ["a", "bb", "ccc"]
BROKEN: set[str] = set()  # children whose load raises (a test sets it)


class Ingest(Flow):
    start = Event()
    found = Event()
    loaded = Event()
    all_loaded = evr.join(loaded, over=found)

    @step(on=start, emits=[found])
    def scan(self, ctx):
        for name in FILES:
            ctx.trigger(self.found, name)
        return len(FILES)

    @step(on=found, success=loaded)
    def load(self, ctx):
        if ctx.sequence in BROKEN:
            raise OSError(f"cannot read {ctx.sequence}")
        return len(ctx.sequence)

    @step(on=all_loaded)
    def summarize(self, ctx):
        return {"total": sum(ctx.results.each("load").values()),
                "children": sorted(ctx.results.each("load")), "scanned": ctx.results["scan"]}


@pytest.fixture(autouse=True)
def _reset():
    yield
    FILES[:] = ["a", "bb", "ccc"]
    BROKEN.clear()


@pytest.mark.parametrize("executor", ["invoke", "thread", "process"])
def test_a_join_fires_once_every_child_loaded_and_reads_their_results(opts, executor):
    result = Ingest(executor=executor, **opts).run()
    assert result and result.status == "success"
    assert result["summarize"] == {"total": 6, "children": ["a", "bb", "ccc"], "scanned": 3}
    assert sorted(result.statuses) == [("load", "a"), ("load", "bb"), ("load", "ccc"),
                                       ("scan", "0"), ("summarize", "0")]


def test_with_no_child_the_join_fires_when_the_fanning_step_ends(opts):
    FILES[:] = []
    result = Ingest(executor="invoke", **opts).run()
    assert result["summarize"] == {"total": 0, "children": [], "scanned": 0}


def test_a_child_that_never_arrives_keeps_the_join_waiting_and_says_which(opts):
    BROKEN.add("bb")
    result = Ingest(executor="thread", stop_on_exception=False, **opts).run()
    assert not result
    assert ("summarize", "0") not in result.statuses
    assert result.summary.joins == (("all_loaded", "0", ("bb",)),)


class Tolerant(Flow):
    """Load each file; a file that cannot be read is rejected; the join waits for either."""

    fail_elsewhere: bool = False  # a step beside the fan-out fails too

    start = Event()
    found = Event()
    loaded = Event()
    rejected = Event()
    settled = evr.join(loaded | rejected, over=found)

    @step(on=start, emits=[found])
    def scan(self, ctx):
        for name in FILES:
            ctx.trigger(self.found, name)

    @step(on=found, success=loaded, failure=rejected)
    def load(self, ctx):
        if ctx.sequence in BROKEN:
            raise OSError(f"cannot read {ctx.sequence}")
        return len(ctx.sequence)

    @step(on=settled)
    def summarize(self, ctx):
        return ctx.results.each("load")

    @step(on=start)
    def elsewhere(self):
        if self.fail_elsewhere:
            raise RuntimeError("something else failed too")


class Fan(Flow):
    """The smallest fan-out: scan starts one child per name, load runs in each, a join sums up."""

    start = Event()
    found = Event()
    loaded = Event()
    all_loaded = evr.join(loaded, over=found)

    @step(on=start, emits=[found])
    def scan(self, ctx):
        ctx.trigger(self.found, "a")

    @step(on=found, success=loaded)
    def load(self, ctx):
        return ctx.sequence

    @step(on=all_loaded)
    def summarize(self, ctx):
        return list(ctx.results.each("load"))


def test_joining_an_expression_joins_failures_too(opts):
    BROKEN.add("bb")
    result = Tolerant(executor="thread", **opts).run()
    assert result and result["summarize"] == {"a": 1, "ccc": 3}


def test_joins_nest_when_a_child_fans_out_again(opts):
    class Tree(Flow):
        start = Event()
        branch = Event()
        leaf = Event()
        leaf_done = Event()
        leaves_done = evr.join(leaf_done, over=leaf)
        branch_done = Event()
        branches_done = evr.join(branch_done, over=branch)

        @step(on=start, emits=[branch])
        def split(self, ctx):
            for b in ("x", "y"):
                ctx.trigger(self.branch, b)

        @step(on=branch, emits=[leaf])
        def spread(self, ctx):
            for i in range(3):
                ctx.trigger(self.leaf, f"{ctx.sequence}{i}")

        @step(on=leaf, success=leaf_done)
        def grow(self, ctx):
            return 1

        @step(on=leaves_done, success=branch_done)
        def count(self, ctx):
            return sum(ctx.results.each("grow").values())

        @step(on=branches_done)
        def total(self, ctx):
            return ctx.results.each("count")

    result = Tree(executor="thread", **opts).run()
    assert result and result["total"] == {"x": 3, "y": 3}


def test_the_classic_api_joins_too(make_eventor):
    seen = []

    @step(on="start", emits=["found"])
    def fan(ctx):
        for name in ("p", "q"):
            ctx.trigger("found", name)

    @step(on="all_loaded")
    def summarize(ctx):
        seen.append(ctx.results.each("load"))

    for join in (evr.join("loaded", over="found"), ("loaded", "found")):
        seen.clear()
        ev = make_eventor()
        for name in ("start", "found", "loaded"):
            ev.add_event(name)
        ev.add_event("all_loaded", join=join)
        ev.add_step(fan)
        ev.add_step("load", func=lambda: 5, triggers={evr.STEP_SUCCESS: "loaded"})
        ev.add_assoc("found", "load")
        ev.add_step(summarize)
        ev.trigger_event("start")
        assert ev.run()
        assert seen == [{"p": 5, "q": 5}]
        ev.close()


def test_a_join_of_an_unknown_event_or_over_an_event_no_step_emits_fails_at_definition():
    with pytest.raises(evr.FlowDefinitionError) as info:
        class Bad(Flow):
            start = Event()
            found = Event()
            loaded = Event()
            done = evr.join("loadd", over=found)
            other = evr.join(loaded, over=start)

            @step(on=start)
            def scan(self, ctx): ...

            @step(on=found, success=loaded)
            def load(self): ...
    text = str(info.value)
    assert "'loadd' is not an event of flow 'Bad'. Did you mean 'loaded'?" in text
    assert "over='start' is not an event any step emits" in text


def test_each_outside_a_joining_step_says_where_it_works(opts):
    class Plain(Flow):
        start = Event()

        @step(on=start)
        def alone(self, ctx):
            return ctx.results.each("x")

    result = Plain(executor="invoke", **opts).run()
    assert "only a step on a join event" in result.task("alone").error


def test_a_continued_run_fires_its_join_once(opts):
    clock = evr.MockClock(autojump=False)

    class Later(Fan):
        def scan(self, ctx):
            for name in ("a", "b"):
                ctx.trigger(self.found, name)

        @step(on=Fan.found, success=Fan.loaded, delay=60)
        def load(self, ctx):
            return ctx.sequence

        def summarize(self, ctx):
            return sorted(ctx.results.each("load").values())

    paused = Later(clock=clock, executor="thread", **opts).run(max_loops=5)
    assert paused.status == "paused" and ("summarize", "0") not in paused.statuses
    clock.advance(61)
    result = Later.resume(paused.run_id, clock=clock, executor="thread", **opts)
    assert result and result["summarize"] == ["a", "b"]
    from eventor.store import open_store

    store = open_store(opts["store"])
    fired = [(t["event"], t["sequence"]) for t in store.triggers(paused.run_id)]
    store.close()
    assert fired.count(("all_loaded", "0")) == 1


def test_a_recovered_run_joins_the_children_it_skipped_and_the_ones_it_reran(opts):
    BROKEN.add("bb")
    failed = Ingest(executor="thread", **opts).run()
    assert not failed and ("summarize", "0") not in failed.statuses
    BROKEN.clear()
    result = Ingest.recover(failed.run_id, executor="thread", **opts)
    assert result and result["summarize"] == {"total": 6, "children": ["a", "bb", "ccc"],
                                              "scanned": 3}
    skipped = {(t.step, t.sequence) for t in result.tasks if t.skipped}
    assert skipped == {("scan", "0"), ("load", "a"), ("load", "ccc")}


# -- from the review: joins that must not fire early, and recovery that must not go stale -----


def test_recovery_runs_the_joining_step_again_when_a_child_ran_again(opts):
    BROKEN.add("bb")
    first = Tolerant(executor="thread", fail_elsewhere=True, stop_on_exception=False, **opts).run()
    assert not first and first["summarize"] == {"a": 1, "ccc": 3}
    BROKEN.clear()
    plan = {(t.step, t.sequence): t for t in Tolerant.recovery_plan(first.run_id, **opts).tasks}
    assert plan[("summarize", "0")].decision == "skip"  # as far as the plan can tell, but:
    assert "runs again if a task of its join's fan-out, run again, ends otherwise" in (
        plan[("summarize", "0")].reason)
    assert "join" not in plan[("load", "a")].reason  # not on a join
    again = Tolerant.recover(first.run_id, executor="thread", fail_elsewhere=False,
                             stop_on_exception=False, **opts)
    assert again and again["summarize"] == {"a": 1, "bb": 2, "ccc": 3}  # not the stale one
    assert not again.task("summarize").skipped and again.task("load", "a").skipped


def test_a_join_does_not_fire_when_its_fanning_step_fails(opts):
    class Partial(Fan):
        def scan(self, ctx):
            ctx.trigger(self.found, "a")
            raise OSError("the listing broke after the first file")

    result = Partial(executor="thread", stop_on_exception=False, **opts).run()
    assert not result and ("summarize", "0") not in result.statuses
    assert result.statuses[("load", "a")] == "success"


def test_a_join_over_an_event_two_steps_emit_or_fired_directly_fails_at_definition():
    with pytest.raises(evr.FlowDefinitionError) as info:
        class Twice(Flow):
            start = Event()
            found = Event()
            loaded = Event()
            all_loaded = evr.join(loaded, over=found)

            @step(on=start, emits=[found])
            def scan_local(self, ctx): ...

            @step(on=start, emits=[found], success=all_loaded)
            def scan_remote(self, ctx): ...

            @step(on=found, success=loaded)
            def load(self): ...
    text = str(info.value)
    assert "over='found' is emitted by 'scan_local' and 'scan_remote'" in text
    assert "it is a join, but step 'scan_remote' on success fires it too" in text


def test_only_the_fanning_step_may_trigger_the_children_and_nobody_the_join(opts):
    class Sneaky(Fan):
        def load(self, ctx):
            ctx.trigger("found", "extra")  # not declared: it would join unseen

    result = Sneaky(executor="invoke", stop_on_exception=False, **opts).run()
    assert "starts the children of a join" in result.task("load", "a").error
    flow = Sneaky(executor="invoke", **opts)
    with pytest.raises(evr.EventorUsageError, match="it is a join, which fires once its children"):
        flow.trigger("all_loaded")
    flow.close()


def test_a_child_started_twice_is_said(opts):
    class Shared(Fan):
        def scan(self, ctx):
            ctx.trigger(self.found, "shared")

    flow = Shared(executor="invoke", **opts)
    flow.trigger("start", "p1")
    flow.trigger("start", "p2")
    with capture_events() as events:
        flow.run()
    flow.close()
    (said,) = [e for e in events if e["event"] == "child_already_started"]
    assert (said["sequence"], said["fired"]) == ("shared", "found")


def test_the_stale_try_of_a_timed_out_thread_step_is_ignored(opts):
    tries = []

    class Slow(Fan):
        @step(on=Fan.start, emits=[Fan.found], executor="thread", timeout=0.2, retries=1)
        def scan(self, ctx):
            tries.append(1)
            if len(tries) == 1:
                time.sleep(0.6)  # past the timeout: this try is abandoned, then speaks up
                ctx.trigger(self.found, "from-try-1")
                return "try 1"
            ctx.trigger(self.found, "c")
            return "try 2"

        def summarize(self, ctx):
            time.sleep(0.6)  # the abandoned try ends meanwhile
            return list(ctx.results.each("load"))

    result = Slow(executor="thread", **opts).run()
    assert result and result["summarize"] == ["c"] and result["scan"] == "try 2"


def test_a_step_on_an_expression_over_a_join_reads_the_children_too(opts):
    class Both(Fan):
        checked = Event()

        @step(on=Fan.start, emits=[Fan.found], success=checked)
        def scan(self, ctx):
            ctx.trigger(self.found, "a")

        def load(self):
            return 7

        @step(on=Fan.all_loaded & checked)
        def summarize(self, ctx):
            return ctx.results.each("load")

    assert Both(executor="invoke", **opts).run()["summarize"] == {"a": 7}
