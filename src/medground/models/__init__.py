"""Models: policy loading with its coordinate frame, semantic image–text encoders
(:mod:`medground.models.encoders`, trained by :mod:`medground.models.semantic_fit`),
segmenters and the tiny offline model factory used by tests and the demo.

Every model loads from a local directory; a hub id is accepted only where the user
passes one and is online.
"""
