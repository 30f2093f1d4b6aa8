"""Tests of kvmlab.host."""
