"""Make the lesson script importable from the tests."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Tests write only to temporary folders: no bytecode caches in the checkout either.
sys.dont_write_bytecode = True

# Plots in tests render off-screen, whatever display the machine has.
os.environ.setdefault("MPLBACKEND", "Agg")
