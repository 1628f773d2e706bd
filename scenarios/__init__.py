"""Locust scenarios for race-harness: duplicate-webhook swarms that verify themselves.

Run one locustfile at a time (``locust -f scenarios/webhook_storm.py ...``); see the README.
``_common`` holds the options, the plan and the cross-worker rendezvous; the release at one
instant across workers is ``harness.burst.HeldBurst``; ``benchmarks/rendezvous_overlap.py`` is the
measurement behind the design.
"""
