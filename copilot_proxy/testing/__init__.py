"""
Test doubles that run for real on loopback sockets: a fake Copilot API.

Nothing in the proxy imports this package.
"""
