"""Flows: workflows of steps on CPUs and GPUs, with fan-out, retries, caching, resume and schedules."""
