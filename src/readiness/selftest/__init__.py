"""The browser self-test of ``readiness serve``: people without the agent check themselves.

``web.py`` holds the HTTP handlers (mounted through the server's route table), ``static/`` the
page, its script and style (package data; nothing is loaded from elsewhere), ``submission.py``
the strict check of what the page posts, ``document.py`` the turn from a browser's
observations into a result document judged like the agent's, ``peer.py`` the WebRTC data
channel peer (aiortc, the ``server`` extra) the page measures UDP round trips against.
"""
