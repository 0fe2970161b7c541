"""Render: a finished Run as report.md, report.html and figures."""
