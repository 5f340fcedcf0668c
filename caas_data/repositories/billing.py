"""Repositories of seed area billing: placeholder until its issue lands."""
