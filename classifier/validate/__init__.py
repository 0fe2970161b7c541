"""Validate: researchers' notes read as claims and checked against a Run."""
