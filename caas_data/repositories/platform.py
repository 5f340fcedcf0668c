"""Repositories of seed area platform: placeholder until its issue lands."""
