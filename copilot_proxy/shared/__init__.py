"""
State shared by every process of a deployment: the Redis client and what
lives in Redis (rate limits, stream leases, the C{/models} cache), and the
usage ledger (in Redis, or in an SQLite file in the state directory).
"""

__all__: list[str] = []
