"""Obfuscation rendering: every family and level of every image, pre-rendered to one Zarr store."""
