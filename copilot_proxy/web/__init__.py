"""
The request as the proxy holds it: its own request class, the JSON answers it
makes itself, the access log line.
"""

