"""callback_vs_verify: PhonePe callbacks and manual "verify payment" calls for one payment race each other.

    locust -f scenarios/callback_vs_verify.py --headless -u 2 --embedded atomic --payments 20 --duplicates 4

Every payment's duplicates mix both code paths of the service (``--channel-mix``, default half and
half; with two or more duplicates both paths always race). The verify path asks PhonePe's status
API: with ``--embedded`` the scenario also starts the PhonePe simulator and points the service at
it; against a service elsewhere, pass the simulator the service asks with ``--gateway-url``.
"""

from harness.swarm.locust import Scenario, SwarmUser, install

install(Scenario(name="callback_vs_verify", channel_mix="callback:1,verify:1"))


class CallbackVsVerifyUser(SwarmUser):
    """A delivery lane for both channels: callbacks and verify calls of one payment leave together."""
