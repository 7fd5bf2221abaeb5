"""The HTML pages, one module per area. Each calls the same service as its JSON twin under /api/v1."""
