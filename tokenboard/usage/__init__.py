"""Usage: the event pipeline every source feeds (gateway, API, import, demo), rollups and their reads."""
