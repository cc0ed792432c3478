"""optout-gateway: an opt-out compliance gateway for SMS and email."""

__version__ = "0.1.0"
