"""Tokenboard: self-hostable AI usage, cost and governance for teams."""

__version__ = "0.1.0"
