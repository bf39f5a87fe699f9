"""The progress bars: what they print, when, and the time they say is left."""

from __future__ import annotations

from db.common.progress import Meter, bar_line, clock_text, weighted_line


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bar_shows_work_done_rate_and_time_left() -> None:
    line = bar_line("function vectors: patching", 25, 100, "prompts", 50.0)
    assert line == (
        "function vectors: patching [#####...............]  25% 25/100 prompts, 0.5 prompts/s, 2:30 left"
    )
    assert bar_line("neurons: pass", 40_960, 40_960, "tokens", 80.0).endswith(
        "100% 40,960/40,960 tokens, 512 tokens/s, done in 1:20"
    )
    assert clock_text(3725) == "1:02:05"
    assert clock_text(59.6) == "1:00"


def test_a_meter_prints_at_the_first_step_then_at_most_every_few_seconds_and_at_the_end() -> None:
    clock, lines = Clock(), []
    meter = Meter(lines.append, "IOI: path patching", 10, "prompt groups", every=5.0, clock=clock)
    for _ in range(9):
        clock.now += 1.0
        meter.advance()
    assert len(lines) == 2  # the first step, then five seconds later
    assert lines[0].startswith("IOI: path patching [##..................]  10% 1/10 prompt groups")
    assert "1.0 prompt groups/s, 0:09 left" in lines[0]
    clock.now += 1.0
    meter.advance()
    assert len(lines) == 3
    assert lines[-1].endswith("10/10 prompt groups, 1.0 prompt groups/s, done in 0:10")


def test_the_model_bar_weighs_units_by_their_cost() -> None:
    # one cheap unit done of a cheap and an expensive one: most of the time is still ahead
    line = weighted_line("smollm2", 1, 2, 1.0, 31.0, 10.0)
    assert line == "smollm2 [....................]   3% 1/2 units, 0:10 elapsed, about 5:00 left"
    assert weighted_line("smollm2", 2, 2, 31.0, 31.0, 310.0).endswith("2/2 units, 5:10 elapsed")
