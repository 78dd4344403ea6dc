"""HTTP routes: the task endpoints and the health probes."""
