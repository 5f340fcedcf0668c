"""`python -m benchmarks`: the layer against raw PyMongo, the typed floor and plain Beanie.

One run, one embedded server (or `CAAS_MONGODB_URI`), every contender interleaved; the figures
are medians of several iterations. See `benchmarks/README` section in the project README.
"""
