"""Read back what the service left behind, from outside: side effects (files, PDFs, rows, HTTP, sink records)
and each payment's state, into an ``Observation`` the oracle judges."""

from harness.observe.effects import describe, read_effects
from harness.observe.files import read_receipt, read_receipts, scan_receipts
from harness.observe.observation import RECEIPT_VANISHED, RECEIPTS_DIR, STATE, Observation, Problem, ReceiptFile
from harness.observe.observer import UNSETTLED, mark_baseline, observe, observe_settled
from harness.observe.state import read_state

__all__ = ["Observation", "Problem", "RECEIPTS_DIR", "RECEIPT_VANISHED", "ReceiptFile", "STATE", "UNSETTLED",
           "describe", "mark_baseline", "observe", "observe_settled", "read_effects", "read_receipt",
           "read_receipts", "read_state", "scan_receipts"]
