"""Repositories of seed area security: placeholder until its issue lands."""
