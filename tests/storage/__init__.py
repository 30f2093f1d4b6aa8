"""Tests of kvmlab.storage."""
