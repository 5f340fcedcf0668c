"""Repositories of seed area saas/encryption: placeholder until its issue lands."""
