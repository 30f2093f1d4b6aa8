"""Tests of kvmlab.experiments."""
