"""A small Azure Resource Manager emulator the real ``azure-mgmt-*`` clients talk to.

No usable independent ACI emulator exists; this one serves what the ``aci`` pool type
calls (container groups with instance views, stop, delete, list, logs, async operations)
and what provisioning creates, validates every body with the SDK's models, lets tests
drive lifecycles and inject errors, and records every request.
"""
