"""The ground floor: what every layer uses and that imports nothing of the project's own.

The one error type (:mod:`db.common.errors`), every setting and environment variable
(:mod:`db.common.settings`), which code made a result (:mod:`db.common.provenance`) and progress
bars (:mod:`db.common.progress`). It sits inside ``db/`` because the database is the lowest
project folder that needs it; classifiers, the database and the survey all import it, and it
imports none of them.
"""
