"""Kernels: pure functions on one batch of events, numpy (or cupy) in, arrays out.

Batches are ``(N, C, Y, X)`` images, ``(N, Y, X)`` masks and labels. Nothing
here knows dask, zarr, files or the CLI.
"""
