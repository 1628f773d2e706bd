"""webhook_storm: many payments, each hit by N duplicate signed PhonePe callbacks at the same instant.

    locust -f scenarios/webhook_storm.py --headless -u 2 --embedded vulnerable --payments 20 --duplicates 5

The master creates the payments through the service's API, then releases them in waves: each
payment's duplicates are split across the workers and released at one absolute instant with the
harness's sender (--sync: last-byte by default, single-packet over HTTP/2, or auto). When the test stops the oracle counts the receipt PDFs on disk and
reads each payment's state; the verdict is the exit code (0 valid, 1 invariant violated,
2 target missed, 3 inconclusive - e.g. the duplicates did not overlap, 4 usage).
"""

from harness.swarm.locust import Scenario, SwarmUser, install

install(Scenario(name="webhook_storm", channel_mix="callback:1"))


class WebhookStormUser(SwarmUser):
    """A PhonePe delivery lane: releases its worker's share of each wave's duplicate callbacks."""
