"""Reading the live topology also makes the run stop at its first failed step."""

from __future__ import annotations

from pyinfra.api import Config

from pgcluster.steps import live


class State:
    def __init__(self) -> None:
        self.callback_handlers: list = []
        self.config = Config()

    def add_callback_handler(self, handler: object) -> None:
        self.callback_handlers.append(handler)


def test_the_run_stops_at_the_first_failed_step_once_it_executes() -> None:
    state = State()
    live.stop_at_the_first_failure(state)  # type: ignore[arg-type]
    live.stop_at_the_first_failure(state)  # type: ignore[arg-type]
    assert len(state.callback_handlers) == 1
    # Not while planning: pyinfra resets a deploy file's config changes after loading it,
    # and hosts it could not reach at all must not stop the run.
    assert state.config.FAIL_PERCENT is None
    state.callback_handlers[0].operation_start(state, "first-operation")
    assert state.config.FAIL_PERCENT == 0
