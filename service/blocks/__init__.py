"""Blocks: typed, shared configuration with write-only secrets.

- :mod:`service.blocks.models`: the store's records (block types and documents);
- :mod:`service.blocks.crypto`: the keyring that encrypts secret fields at rest;
- :mod:`service.blocks.ops`: what the API and the CLI do (validate, encrypt, mask);
- :mod:`service.blocks.refs`: ``{{ block:TYPE/NAME[.FIELD] }}`` in deployments' job
  variables, resolved at dispatch.

Light on purpose: nothing here is imported on the API's hot path until a block route
or a dispatch that needs it runs (``cryptography`` and ``jsonschema_rs`` load lazily).
"""
