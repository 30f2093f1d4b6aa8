"""Tests of kvmlab.network."""
