"""Gymnasium environments over the fleet simulator (registered on ``import rlscale``)."""
