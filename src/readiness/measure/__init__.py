"""Measurement libraries: what the checks and the self-test page measure with (audio, cameras,
frames, network facts, the STUN client, proxies, inventory, OS support, bandwidth estimator and
loaded latency). Nothing here judges: it returns figures and facts. Imports only the foundation
modules (``readiness.check``, ``result``, ``atomic``, ``redact``, ``versions``).
"""
