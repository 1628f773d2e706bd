"""The embedded store's claim is atomic across threads; raw mongomock's is not."""

from __future__ import annotations

import mongomock
from helpers import claim_winners

from reference_service.store import ChargeStore, open_store

TRIALS = 60


def _new_charge(store: ChargeStore, n: int) -> str:
    return store.create(vendor_name="v", exhibition_id="e", amount=100, merchant_transaction_id=f"MT{n}")["_id"]


def test_raw_mongomock_find_one_and_update_double_claims(fast_switching):
    collection = mongomock.MongoClient().db.charges
    raw = ChargeStore(collection)  # the store's code, but without its lock
    # Up to ten times the trials, stopping at the first double claim: on a loaded machine the threads
    # interleave less often, and one double claim is all this witness has to show.
    double = any(claim_winners(raw.claim_receipt, _new_charge(raw, n)) > 1 for n in range(10 * TRIALS))
    assert double, "raw mongomock never double-claimed: the atomicity test below would prove nothing"


def test_embedded_store_claims_exactly_once(fast_switching):
    store = open_store(None)
    winners = [claim_winners(store.claim_receipt, _new_charge(store, n)) for n in range(TRIALS)]
    assert winners == [1] * TRIALS


def test_released_claim_can_be_won_again():
    store = open_store(None)
    charge_id = _new_charge(store, 1)
    assert store.claim_receipt(charge_id) is not None
    assert store.claim_receipt(charge_id) is None
    store.release_claim(charge_id)
    assert store.claim_receipt(charge_id) is not None


def test_failed_state_never_downgrades_a_paid_charge():
    store = open_store(None)
    charge_id = _new_charge(store, 1)
    store.mark_paid(charge_id, "T1", None)
    store.mark_failed(charge_id)
    assert store.get(charge_id)["paymentStatus"] == "paid"
