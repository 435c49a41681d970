"""Kernels: pure functions on one batch of events, numpy arrays in, arrays out (CPU; GPU is issue #9).

Batches are ``(N, C, Y, X)`` images, ``(N, Y, X)`` masks and labels. Nothing
here knows dask, zarr, files or the CLI.
"""
