"""The server side: ``http`` the small bounded HTTP framework (``routes`` what features plug
into it, ``fairness`` who gets a slot, ``clients`` which address a request comes from behind
trusted proxies); ``measure`` the speed-test endpoints and ``run_server``; ``stun`` the STUN
responder. The collector and the self-test page build on it.
"""
