"""Fixtures of the Lambda tests (defined in ``lambda_support``, which the tests also import)."""

from lambda_support import fake_aws, function_env, lambda_context, seeded_aws  # noqa: F401
