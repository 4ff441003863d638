"""Experiments that reproduce the papers' claims in miniature (`egoworld experiment ...`)."""
