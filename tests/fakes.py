"""Stand-ins the tests share."""


class Recorder:
    """A tqdm-like bar that remembers what it was told (:mod:`kvmlab.progress`'s protocol).

    ``done`` adds up the updates, ``fractions`` notes ``done / total`` after each one (once
    the verb has set ``total``), ``notes`` keeps every ``set_postfix_str`` text.
    """

    total = None

    def __init__(self):
        self.done, self.notes, self.fractions = 0, [], []

    def update(self, n=1):
        self.done += n
        if self.total:
            self.fractions.append(self.done / self.total)

    def set_postfix_str(self, s="", refresh=True):
        self.notes.append(s)
