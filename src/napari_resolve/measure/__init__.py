"""How good is a result: similarity metrics and maps, effective resolution, classical baselines.

Importing this package loads nothing heavy; each module imports torch or scipy itself.
"""
