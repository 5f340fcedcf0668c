"""Repositories of seed area saas/media: placeholder until its issue lands."""
