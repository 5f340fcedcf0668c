"""Repositories of seed area saas/groups: placeholder until its issue lands."""
