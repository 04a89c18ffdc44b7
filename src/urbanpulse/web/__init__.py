"""Static files of the live operations page (``static/``), served by :mod:`urbanpulse.api.routes.live`."""
