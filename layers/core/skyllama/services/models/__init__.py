"""The model catalogue and what changes it: copy, delete, create, garbage collection, leftover sweeps."""
