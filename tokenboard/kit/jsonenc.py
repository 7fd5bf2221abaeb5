"""Compact JSON, encoded by one shared encoder.

``json.dumps`` with any argument builds a new ``JSONEncoder`` per call, which costs about as much again as
the encoding of a small body (7.0 us against 3.2 us for a chat request, measured 2026-12-03). The gateway
encodes on every request (the upstream body, the usage journal line, stream events), so it encodes here.
Same output as ``json.dumps(value, separators=(",", ":"))``.
"""

from __future__ import annotations

import json

compact_dumps = json.JSONEncoder(separators=(",", ":")).encode
