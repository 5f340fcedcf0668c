"""Repositories of seed area saas/messaging: placeholder until its issue lands."""
