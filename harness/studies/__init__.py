"""Studies made of many runs against the reference service: the matrix of modes × faults, and detection power."""

from harness.studies.matrix import run_matrix
from harness.studies.power import PowerSettings, sweep

__all__ = ["PowerSettings", "run_matrix", "sweep"]
