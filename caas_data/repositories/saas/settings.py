"""Repositories of seed area saas/settings: placeholder until its issue lands."""
