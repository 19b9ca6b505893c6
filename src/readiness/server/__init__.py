"""The server side of measurement: ``http`` is the small bounded HTTP framework that the
collector and the self-test page build on; the speed-test endpoints and the STUN responder serve
the agents' network checks.
"""
