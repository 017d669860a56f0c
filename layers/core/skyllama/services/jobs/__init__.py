"""Long work as jobs (the AWS worker): create, pull and push, idempotent and resumable."""
