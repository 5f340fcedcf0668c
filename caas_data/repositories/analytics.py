"""Repositories of seed area analytics: placeholder until its issue lands."""
