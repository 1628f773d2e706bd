"""flaky_generation: receipt generation fails now and then; redeliveries still end in exactly one receipt.

    locust -f scenarios/flaky_generation.py --headless -u 2 --embedded atomic --payments 20 --failure-rate 0.3

Against a service with injected generation failures (the embedded service's ``--failure-rate``,
default 0.3 here; against ``-H`` either the service's own flag or ``--failure-rate``, set for the
run through ``PUT /_admin/faults``) a failed generation rolls the receipt flag back. Like PhonePe
retrying a webhook, every paid payment that has no receipt after a round of duplicates gets
another round, up to ``--redelivery-rounds`` more (``--heal-after K`` turns the failures off after K rounds). The
oracle then checks exactly one receipt per payment; each round must have raced on its own.
"""

from harness.swarm.locust import Scenario, SwarmUser, install

# The seed's targets ask for > 99 % successful generations, which injected failures rule out.
install(Scenario(name="flaky_generation", channel_mix="callback:1", redelivery_rounds=7, failure_rate=0.3,
                 targets="exactly-once"))


class FlakyGenerationUser(SwarmUser):
    """A delivery lane that also carries the redeliveries of payments whose receipt failed."""
