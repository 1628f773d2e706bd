"""Every error the harness raises on purpose, in one hierarchy.

``RaceHarnessError`` is the root. ``HarnessError`` is the one a run cannot go on from: a usage or
configuration problem (exit code 4); the front ends turn the others into it (or into exit 3) where
they meet them. Each class keeps the built-in base its callers catch it by (``ValueError`` for bad
input, ``RuntimeError`` for a process or service that misbehaved).
"""

from __future__ import annotations


class RaceHarnessError(Exception):
    """The root of every error the harness raises on purpose."""


class HarnessError(RaceHarnessError, RuntimeError):
    """A usage or configuration problem (exit code 4): the run could not be made."""


# -- bad input: files and options that do not fit -----------------------------------------------
class ConfigError(RaceHarnessError, ValueError):
    """A configuration file (target, targets, profile) that does not fit its schema."""


class ProfileError(ConfigError):
    """A profile that cannot be used: one line naming the field (and its line in the file)."""


class TemplateError(RaceHarnessError, ValueError):
    """A template that cannot be filled in (an unset variable, an unknown placeholder)."""


class TargetsError(RaceHarnessError, ValueError):
    """A targets file that cannot be used."""


class PlanError(RaceHarnessError, ValueError):
    """The plan's parameters do not make sense."""


class AuditError(RaceHarnessError, ValueError):
    """A usage mistake: a rule that does not parse, a directory that does not exist (exit 4)."""


# -- a service or a process that did not behave -------------------------------------------------
class TargetError(RaceHarnessError, RuntimeError):
    """The target did not behave as its description says (e.g. creating a payment failed)."""


class SinkError(RaceHarnessError, RuntimeError):
    """The sink could not start or run; the message is one line naming what and why."""


class ServiceStartError(RaceHarnessError, RuntimeError):
    """The service process exited or did not answer in time."""


class WireServerError(RaceHarnessError, RuntimeError):
    """The wire server could not be started (or did not answer in time)."""


class WireUnavailable(WireServerError):
    """The ``wire`` extra is not installed: there is no SecantusDB daemon to run."""


class ReferenceUnavailable(RaceHarnessError, RuntimeError):
    """The reference service's packages are not installed."""


class SwarmTimeout(HarnessError):
    """The swarm could not go on: no lane answered within its bound (a set-up problem: exit code 4)."""
