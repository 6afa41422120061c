"""Test-wide settings: quiet TensorFlow logs; the backend comes from KERAS_BACKEND; the
scripts' shared helper (scripts/_cli.py) is importable, as it is when a script runs."""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
