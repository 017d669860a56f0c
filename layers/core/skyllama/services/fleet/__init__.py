"""keep_alive across a fleet of serverless instances: instance records, the warm policy, warm-ups."""
