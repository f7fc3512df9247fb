"""Every fixed part of the English hygiene sentences (mappings/hygiene.py), written out here rather than read from
the code: a German page must contain none of them (the HTTP and the browser tests)."""

from __future__ import annotations

ENGLISH_HYGIENE = [  # every fixed part of the English hygiene sentences (mappings/hygiene.py), written out here
    "days in the past", "No next step", "No activity", "limit ", " days)", "In stage ", "more than",
    "the team's median", "the team&#39;s median", "Close date pushed", "flagged from", "No amount in stage",
    "Single-threaded", "expected)", "does not match stage", "no probability", "Probability ",
]  # fmt: skip
