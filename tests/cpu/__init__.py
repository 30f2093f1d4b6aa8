"""Tests of kvmlab.cpu."""
