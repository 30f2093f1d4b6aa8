"""Faults injected into live runs: signals, SIGKILL, a dying libvirtd."""
