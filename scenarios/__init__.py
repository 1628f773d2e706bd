"""Locust scenarios for race-harness: duplicate-webhook swarms that verify themselves.

Run one locustfile at a time (``locust -f scenarios/webhook_storm.py ...``); see the README.
Only the Locust glue is here: ``_options`` (the options on Locust's parser) and ``_common`` (the
transport over Locust's messages, the event hooks, the user class, the embedded service). The
protocol — waves released at one instant across workers, redeliveries, the verdict — is
``harness.swarm``; ``benchmarks/rendezvous_overlap.py`` is the measurement behind the design.
"""
