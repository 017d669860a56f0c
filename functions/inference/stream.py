"""Streaming inference: the image's entry point behind a Function URL in RESPONSE_STREAM mode.

A custom runtime (``skyllama.adapters.aws.lambda_stream``) instead of the Python runtime client:
Function URL requests go through the same app as ``app.py`` with each NDJSON line sent to the client
as it is generated; any other event (the warmer's) goes to ``app.handler`` (Mangum, buffered).
"""

from skyllama.adapters.aws.lambda_stream import run


def load():  # type: ignore[no-untyped-def]
    import app  # the buffered function's module: the app is built once, at init

    return app.app, app.handler


if __name__ == "__main__":
    run(load)
