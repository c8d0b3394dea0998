"""pushpool runner: executes exactly one flow run, talking to the service over HTTP.

Nothing here may import ``service`` or ``provisioners``; the runner ships alone in
the runner image. Keep imports lazy: process start-up time is part of every run.
"""
