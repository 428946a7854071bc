"""The adversarial suite, organised by the ids of ../../shared SECURITY-CHECKLIST (S-01 … S-95).

Every test name carries the id it proves (``test_S13_…``); SECURITY.md maps each id to them.
"""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))  # scripted_provider.py lives one level up
