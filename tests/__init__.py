"""kvmlab's tests: a package, so that shared helpers are imported by their full name
(``from tests.processes import stop_group``)."""
