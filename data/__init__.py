"""kvmlab's shipped data, installed as the package ``kvmlab.shipped``.

``scenarios/*.json`` and ``recorded/*.json(l)`` are read through :mod:`kvmlab.data`; this
folder is a package only so that it ships inside kvmlab's wheel.
"""
