"""The engine and runner layer (DESIGN §2): event-time ordering, dedupe, episodes, verdicts,
and the one loop that turns input records into events, used unchanged by ``tollguard
replay`` and by the Faust worker.

Layers, bottom to top (each imports only from layers below it):
``tollguard`` (domain) → ``detectors``, ``models`` → ``engine`` → ``streams``.
"""
