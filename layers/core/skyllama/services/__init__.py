"""The services: what skyllama does, behind the ports and below HTTP.

- ``models/``: the catalogue (tags, show, copy, delete), create, garbage collection, sweeps;
- ``inference/``: generate, chat and embed, the runner scheduler, batching, cancellation;
- ``registry/``: pull and push (client side), the ``/v2/`` registry (server side), outbound safety;
- ``access/``: API keys, who may see and change which model, usage metering and quotas;
- ``jobs/``: long work (create, pull, push) as worker jobs on AWS;
- ``fleet/``: keep_alive across serverless instances (instance records, warm policy, warm-ups);
- ``metrics.py``: Prometheus and EMF figures.
"""
