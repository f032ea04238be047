"""How long the provider may wait on SparkPost: bounds shared by config validation and the provider.

Kept apart from the provider so that config parsing (and the check command) need not import Pulumi.
"""

MAX_VERIFY_TIMEOUT = 3600
"""Upper bound of `verifyTimeout`, in seconds: one `pulumi up` waits at most an hour for verification."""

MAX_SUBACCOUNT = 2**53 - 1
"""Largest subaccount id accepted: the largest whole number a JSON (and gRPC) number carries exactly."""
