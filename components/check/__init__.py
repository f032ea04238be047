"""The check command: is HTTPS tracking really working for a host, and if not, why and what to do."""
