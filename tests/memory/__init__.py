"""Tests of kvmlab.memory."""
