"""The one bounded wait the harness uses instead of hand-written sleep loops."""

from __future__ import annotations

import threading

import pytest

from harness.local.poll import poll


def test_poll_returns_the_first_truthy_answer():
    answers = iter([None, 0, "", "ready", "later"])
    assert poll(lambda: next(answers), timeout=5, interval=0) == "ready"


def test_poll_gives_up_at_the_timeout_with_the_last_answer():
    calls = []
    assert poll(lambda: calls.append(1) or False, timeout=0.05, interval=0.01) is False
    assert len(calls) >= 2  # asked again at the deadline, not only once


def test_poll_sees_a_condition_that_came_true_while_it_slept():
    flag = threading.Event()
    threading.Timer(0.05, flag.set).start()
    assert poll(flag.is_set, timeout=10, interval=0.01) is True


def test_a_check_that_raises_stops_the_wait():
    def dead() -> bool:
        raise RuntimeError("the process exited")

    with pytest.raises(RuntimeError, match="exited"):
        poll(dead, timeout=10)
