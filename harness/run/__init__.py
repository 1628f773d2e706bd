"""The run session: the one API the CLI, the Locust swarm and pytest share — prepare, send, read back, judge.

``run_race`` runs one race end to end; ``RunSession`` is the same in steps (a swarm sends its own
way between ``prepare`` and ``judge``); ``verify_history`` judges a history however it was sent;
``reverify`` judges a finished run again. The run's options are defined once in ``options``.
"""

from harness.run.check import ProfileCheck, check_profile
from harness.run.judge import judge, read_answers, reverify, verify_history
from harness.run.session import SYNC_CHOICES, RunConfig, RunSession, run_race, send

__all__ = ["ProfileCheck", "RunConfig", "RunSession", "SYNC_CHOICES", "check_profile", "judge", "read_answers",
           "reverify", "run_race", "send", "verify_history"]
