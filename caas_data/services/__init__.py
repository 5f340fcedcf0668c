"""Services: the tenant lifecycle and platform-wide jobs.

Provisioning, the placement resolver, moves between placements and clusters, capacity, the
sharding plan and retention. The layer (`caas_data.layer`) composes them; nothing below
imports them.
"""
