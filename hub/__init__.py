"""The hub core: one AsyncAgent per agent id, its events, sessions and the model seam.

This package imports no surface (channels, gateway, desktop); surfaces import it.
"""
