"""kvmlab's notebooks, installed as the package ``kvmlab.shipped.notebooks``.

``kvmlab notebooks DIR`` copies them out for a student; this folder is a package only so
that the notebooks ship inside kvmlab's wheel.
"""
